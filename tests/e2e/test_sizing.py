"""Sizing from measured costs: `morgul bench profile` measures every stage
here and saves a profile; `morgul plan --profile` sizes a detector with it,
on this machine and on a two-socket server's topology, and says when a
machine is too small and what would do."""
import json
import re
import os

import pytest

from conftest import ROOT, SHARED, morgul

FRAMES = SHARED / "psi-mod5"
TWO_SOCKET = ROOT / "tests" / "data" / "two-socket-2nic.xml"


@pytest.mark.skipif(not FRAMES.exists(), reason=f"no real frames in {FRAMES}")
def test_profile_then_plan(tmp):
    prof = tmp / "profile.json"
    out = morgul("bench", "profile", "--frames-dir", FRAMES, "--scratch", tmp, "--warm-memory", 0, "--seconds", 0.3,
                 "--profile-out", prof, timeout=300).stdout
    assert f"saved to {prof}" in out
    doc = json.loads(prof.read_text())
    stages = doc["stages"]
    assert set(stages) == {"receive", "convert_int16", "convert_int32", "convert_float32", "compress_raw",
                           "compress_int16", "compress_int32", "compress_float32", "write"}
    assert all(s["ns"] > 0 and s["bytes"] > 0 for s in stages.values())
    # the plan's top rates checked against a loopback and a replay run in the same run: both measured, the
    # ratio printed (its range is a benchmark's matter, docs/performance.md; here: a real, positive figure)
    check = out[out.index("the plan against reality"):]
    m = re.search(r"loopback.*?\n\s+predicted (\d+) frames/s.*?measured (\d+) without loss.*?: x([0-9.]+)", check, re.S)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, check
    assert abs(float(m.group(3)) - int(m.group(2)) / int(m.group(1))) < 0.01, check
    m = re.search(r"replay.*?\n\s+predicted (\d+) module-frames/s, measured (\d+): x([0-9.]+)", check, re.S)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, check
    assert abs(float(m.group(3)) - int(m.group(2)) / int(m.group(1))) < 0.01, check
    assert check.count("why:") == 2, check
    # a small detector on this machine, with the profile
    out = morgul("plan", "--modules", 1, "--interfaces", 2, "--rate", 100, "--profile", prof).stdout
    assert "costs from" in out and doc["machine"] in out
    assert "verdict    keeps up" in out
    # a 4M at 2 kHz, corrected, on a 16-core two-socket server: too small, and how many servers would do
    out = morgul("plan", "--modules", 8, "--interfaces", 2, "--rate", 2000, "--correct", "--topology", TWO_SOCKET,
                 "--profile", prof).stdout
    # (what would do depends on the profile just measured, which a sanitizer build on a busy machine makes
    # ten times slower: more servers, or no core that can take a link; the arithmetic itself is unit-tested)
    assert "TOO SMALL" in out
    assert any(words in out for words in ("servers like it would keep up", "not even one module fits on 16 cores",
                                          "no core can take it")), out
    # the saved profile is found where bench profile saves it by default
    out = morgul("plan", "--modules", 1, "--interfaces", 2, "--rate", 100,
                 env=dict(os.environ, MORGUL_PROFILE=str(prof))).stdout
    assert doc["machine"] in out
    # a profile that is not one is refused, saying so
    (tmp / "bad.json").write_text('{"machine": "x", "stages": {}}')
    p = morgul("plan", "--modules", 1, "--profile", tmp / "bad.json", check=False)
    assert p.returncode == 1 and "bench profile" in p.stdout


def test_plan_without_profile_uses_the_built_in_figures(tmp):
    out = morgul("plan", "--modules", 16, "--topology", "pack:1 numa:1 core:2 pu:1", "--rate", 1000,
                 env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"}).stdout
    assert "costs from built in" in out
    assert "16 links on 2 cores" in out and "TOO SMALL" in out
