"""`morgul serve` driven only through its HTTP API: arming, a simulated
detector sending over loopback, status and metrics during the run,
disarming, the files and the run log; runs that end themselves; --auto;
packets that arrive unarmed; every bad request (refused with its 4xx and
nothing changed); the token; a service killed mid-run and started again.
Waiting is always for something the service reports (its readiness line, a
run's state), with a deadline, never for a guessed time."""
import json
import os

import h5py
import numpy as np
import pytest

from conftest import Service, _services, morgul, pattern, read_run

def send(port, frames, modules=2, first=1, rate=2000):
    morgul("simulate", "--modules", modules, "--port", port, "-n", frames, "--first-frame", first, "--rate", rate)


def check_files(master_prefix, nmod, first, count):
    r = read_run(master_prefix)
    assert r["data"].shape[0] == count
    for i in range(count):
        for m in range(nmod):
            assert r["frame_number"][i, m] == first + i
            np.testing.assert_array_equal(r["data"][i, m], pattern(m, first + i))
    return r


def test_arm_receive_disarm(tmp, port):
    s = Service(tmp, port).start()
    st = s.get("/api/status")
    assert st["state"] == "idle" and st["run"] is None and st["detector"]["modules"] == 2
    assert st["disk"]["free_bytes"] > 0
    status, rec = s.call("POST", "/api/arm", {"name": "lyso1", "sample": "lysozyme"})
    assert status == 200, rec
    assert rec["name"] == "lyso1" and rec["state"] == "running"
    assert s.get("/api/status")["state"] == "armed"
    send(port, 60)
    st = s.wait_for("60 frames written", lambda st: st["run"].get("counters", {}).get("written") == 60)
    assert st["state"] == "receiving"
    metrics = s.call("GET", "/metrics")[1]
    assert 'morgul_state{state="receiving"} 1' in metrics
    for link in (0, 1):
        assert f'morgul_link_packets_total{{run="lyso1",link="{link}",module="M00{link}",interface="0"}} 7680' \
            in metrics
    assert 'morgul_run_frames_total{run="lyso1",kind="written"} 60' in metrics
    status, rec = s.call("POST", "/api/disarm")
    assert status == 200, rec
    assert rec["state"] == "ended" and rec["exit_status"] == 0, rec
    assert rec["counters"]["complete"] == 60 and rec["counters"]["packets_lost"] == 0
    assert rec["reason"] == "disarmed"
    assert s.get("/api/status")["state"] == "idle"
    r = check_files(s.data / "lyso1", 2, 1, 60)
    assert r["run"]["packets_lost"] == 0
    log = s.run_log()
    assert [(e["event"], e["name"]) for e in log] == [("start", "lyso1"), ("end", "lyso1")]
    assert log[1]["counters"]["written"] == 60 and log[1]["verdict"].startswith("complete")
    assert "summary" not in log[1] and (s.data / "lyso1.log").read_text().count("result    complete") == 1
    assert s.get("/api/runs")["runs"][0]["name"] == "lyso1"
    assert s.stop() == 0


def test_runs_end_themselves_and_are_numbered(tmp, port):
    """A run armed for N frames ends after them; unnamed runs take the next
    number; the service is ready for the next run at once; the second and
    third runs start no thread (the first run's are kept)."""
    s = Service(tmp, port, modules=1).start()
    assert s.get("/api/status")["threads"] == {"kept": 0, "runs_on_them": 0}
    kept = []
    for k in (1, 2, 3):
        status, rec = s.call("POST", "/api/arm", {"frames": 40})
        assert status == 200 and rec["name"] == f"run_{k:06d}", rec
        send(port, 40, modules=1, first=100 * k)
        rec = s.wait_run_ended(rec["name"])
        assert rec["state"] == "ended" and rec["exit_status"] == 0 and rec["counters"]["images"] == 40, rec
        assert rec["reason"] == "all requested frames done"
        check_files(s.data / rec["name"], 1, 100 * k, 40)
        kept.append(s.get("/api/status")["threads"])
    assert len(s.get("/api/runs")["runs"]) == 3
    # each run: its own thread, a receiver per link, the workers and a collector (4 or more)
    per_run = kept[0]["runs_on_them"]
    assert per_run >= 4 and kept[0]["kept"] == per_run, kept
    assert kept[1] == {"kept": per_run, "runs_on_them": 2 * per_run}, kept
    assert kept[2] == {"kept": per_run, "runs_on_them": 3 * per_run}, kept


def test_unarmed_packets_are_counted_and_kept_out(tmp, port):
    """What arrives between runs is thrown away and counted: the next run
    holds only its own frames."""
    s = Service(tmp, port, modules=1).start()
    send(port, 10, modules=1, first=500)
    s.wait_for("1280 unarmed packets", lambda st: st["packets_unarmed"] == 1280)
    status, rec = s.call("POST", "/api/arm", {"frames": 20})
    assert status == 200
    send(port, 20, modules=1, first=1)
    rec = s.wait_run_ended(rec["name"])
    assert rec["counters"]["images"] == 20 and rec["counters"]["stray"] == 0, rec
    check_files(s.data / rec["name"], 1, 1, 20)


def test_bad_requests_change_nothing(tmp, port):
    s = Service(tmp, port, modules=1).start()
    status, rec = s.call("POST", "/api/arm", {"name": "taken", "frames": 5})
    assert status == 200
    send(port, 5, modules=1)
    s.wait_run_ended("taken")
    before = sorted(os.listdir(s.data))
    cases = [
        ("POST", "/api/arm", b'{"frames": ', 400, "not JSON"),
        ("POST", "/api/arm", b'[1, 2]', 400, "JSON object"),
        ("POST", "/api/arm", b'{"frames": 1, "frames": 2}', 400, "not JSON"),
        ("POST", "/api/arm", b'{"exposure": 1}', 400, "unknown setting 'exposure'"),
        ("POST", "/api/arm", b'{"frames": -1}', 400, "frames"),
        ("POST", "/api/arm", b'{"frames": "10"}', 400, "frames"),
        ("POST", "/api/arm", b'{"name": "a/b"}', 400, "name"),
        ("POST", "/api/arm", b'{"name": ".."}', 400, "name"),
        ("POST", "/api/arm", b'{"name": "../../etc/x"}', 400, "name"),
        ("POST", "/api/arm", b'{"type": "int8"}', 400, "type"),
        ("POST", "/api/arm", b'{"corrected": true}', 400, "calibration"),
        ("POST", "/api/arm", b'{"calibration": "/x.h5"}', 400, "energy"),
        ("POST", "/api/arm", b'{"name": "taken"}', 409, "exists"),
        ("POST", "/api/arm", b'{"frames": 100000000000}', 507, "free space"),
        ("POST", "/api/arm", json.dumps({"calibration": str(tmp / "none.h5"), "energy_kev": 12}).encode(), 422,
         "cannot open calibration"),
        ("POST", "/api/arm", b'{"sample": "' + b"x" * 70000 + b'"}', 413, "larger than"),
        ("GET", "/api/arm", None, 405, "use POST"),
        ("POST", "/api/status", b"{}", 405, "use GET"),
        ("POST", "/api/disarm", None, 409, "no run is on"),
        ("GET", "/api/nothing", None, 404, "openapi"),
        ("GET", "/api/runs/..", None, 400, "not a run name"),
        ("GET", "/api/runs/nosuch", None, 404, "no run named"),
    ]
    for method, path, raw, want, words in cases:
        status, body = s.call(method, path, raw=raw)
        assert status == want, (path, raw[:80] if raw else None, status, body)
        assert words in body["error"], (raw[:80] if raw else path, body)
    assert sorted(os.listdir(s.data)) == before
    assert len(s.get("/api/runs")["runs"]) == 1 and s.get("/api/status")["state"] == "idle"
    # arming while armed
    assert s.call("POST", "/api/arm", {"name": "second"})[0] == 200
    status, body = s.call("POST", "/api/arm", {"name": "third"})
    assert status == 409 and "disarm it first" in body["error"]
    assert s.call("POST", "/api/disarm")[0] == 200
    assert not (s.data / "third_master.h5").exists()


def test_token(tmp, port):
    tok = tmp / "token"
    tok.write_text("s3cret-token-0123456789\n")
    s = Service(tmp, port, "--token-file", tok, modules=1).start()
    assert s.call("GET", "/api/status")[0] == 401
    assert s.call("GET", "/metrics")[0] == 401
    assert s.call("POST", "/api/arm", {})[0] == 401
    assert s.call("GET", "/api/status", token="wrong-token-0123456789")[0] == 401
    s.token = "s3cret-token-0123456789"
    assert s.call("GET", "/api/status")[0] == 200
    assert s.call("GET", "/api/status?token=s3cret-token-0123456789", token="")[0] == 200  # the web page's way
    assert s.call("POST", "/api/disarm?token=s3cret-token-0123456789", token="")[0] == 401  # never to change
    # listening beyond loopback without a token is refused before anything binds
    p = morgul("serve", "--data-dir", tmp / "d2", "--port", port + 4, "--http", f"0.0.0.0:{port + 4}",
               check=False)
    assert p.returncode == 1 and "token-file" in p.stdout


def test_auto_three_acquisitions(tmp, port):
    """--auto: three bursts from the detector, three runs, no request."""
    s = Service(tmp, port, "--auto", "--auto-idle", 0.4, modules=1).start()
    for k in range(1, 4):
        send(port, 30, modules=1, first=1)
        rec = s.wait_run_ended(f"run_{k:06d}")
        assert rec["auto"] is True and rec["counters"]["images"] == 30 and rec["exit_status"] == 0, rec
        check_files(s.data / f"run_{k:06d}", 1, 1, 30)
    assert [e["name"] for e in s.run_log() if e["event"] == "end"] == [f"run_{k:06d}" for k in (1, 2, 3)]


def test_auto_counter_restart_ends_the_run(tmp, port):
    """--auto: the detector's counter restarts with no pause between two
    acquisitions; the first run ends there (reason: counter restart) and the
    next run begins on the same receiving, with its own files; no frame of
    either is lost or shifted, and the last run carries the packet counters."""
    s = Service(tmp, port, "--auto", "--auto-idle", 3, modules=1).start()
    send(port, 30, modules=1, first=1000)
    send(port, 25, modules=1, first=1)  # well within the idle time: one receiving
    second = s.wait_run_ended("run_000002")
    first = s.get("/api/runs/run_000001")
    assert first["reason"] == "counter restart" and first["exit_status"] == 0, first
    assert first["continued_by"] == "run_000002" and first["counters"]["images"] == 30, first
    assert first["counters"]["complete"] == 30 and first["counters"]["first_number"] == 1000, first
    assert second["continues"] == "run_000001" and second["reason"].startswith("idle"), second
    assert second["acquisition"]["images"] == 25 and second["acquisition"]["complete"] == 25, second
    assert second["counters"]["packets_received"] == 55 * 128 and second["counters"]["packets_lost"] == 0, second
    assert second["exit_status"] == 0, second
    check_files(s.data / "run_000001", 1, 1000, 30)
    check_files(s.data / "run_000002", 1, 1, 25)
    assert not list(s.data.glob("*acq*")), sorted(p.name for p in s.data.iterdir())
    assert [(e["event"], e["name"]) for e in s.run_log()] == [
        ("start", "run_000001"), ("end", "run_000001"), ("start", "run_000002"), ("end", "run_000002")]


def test_restart_after_kill(tmp, port):
    """kill -9 mid-run: started again, the service finishes the run's files,
    logs it as interrupted, and arms the next run."""
    s = Service(tmp, port, modules=1).start()
    assert s.call("POST", "/api/arm", {"name": "killed"})[0] == 200
    send(port, 50, modules=1)
    s.wait_for("50 frames synced", lambda st: st["run"].get("counters", {}).get("synced") == 50)
    s.p.kill()
    s.p.wait()
    s2 = Service(tmp, port, modules=1).start()
    assert "run killed was interrupted" in s2.output
    rec = s2.get("/api/runs/killed")
    assert rec["state"] == "interrupted" and rec["exit_status"] == 1
    with h5py.File(s.data / "killed_master.h5") as f:
        n = f["data"].shape[0]
    assert n == 50  # every frame the service said was on disk
    assert s2.call("POST", "/api/arm", {"frames": 10})[0] == 200
    send(port, 10, modules=1)
    assert s2.wait_run_ended("run_000001")["exit_status"] == 0
    assert [(e["event"], e["name"]) for e in s2.run_log()] == [
        ("start", "killed"), ("end", "killed"), ("start", "run_000001"), ("end", "run_000001")]


def test_openapi_document(tmp, port):
    s = Service(tmp, port, modules=1).start()
    doc = s.get("/openapi.json")
    assert doc["openapi"].startswith("3.")
    for path in ("/api/status", "/api/arm", "/api/disarm", "/api/runs", "/api/runs/{name}", "/metrics"):
        assert path in doc["paths"], path
    allowed = set(doc["components"]["schemas"]["ArmSettings"]["properties"])
    # every setting the document names is accepted by the service, and nothing else
    status, body = s.call("POST", "/api/arm", {"nonsense": 1})
    for name in allowed:
        assert name in body["error"], name


def test_dark_run_through_the_api(tmp, port):
    """POST /api/pedestal: the dark frames into a calibration file, the
    same constants `morgul pedestal` makes from a capture of them."""
    from test_pedestal import read_cal
    common = ["--content", "dark", "-n", 60, "--seed", 21, "--bad-pixels", "noisy=10,stuck=10,dead=10"]
    morgul("simulate", *common, "--pcap", tmp / "g0.pcap")
    morgul("pedestal", "-c", tmp / "off.h5", "--g0", tmp / "g0.pcap", "--module-names", "M000", "-q")
    s = Service(tmp, port, modules=1).start()
    for bad, words in (({"frames": 60}, "calibration"), ({"calibration": str(tmp / "x.h5")}, "frames"),
                       ({"frames": 60, "calibration": "x.h5", "gain": 3}, "gain"),
                       ({"frames": 60, "calibration": "x.h5", "energy_kev": 12}, "unknown setting 'energy_kev'")):
        status, body = s.call("POST", "/api/pedestal", bad)
        assert status == 400 and words in body["error"], (bad, body)
    status, rec = s.call("POST", "/api/pedestal", {"name": "dark0", "frames": 60, "calibration": str(tmp / "live.h5")})
    assert status == 200 and rec["kind"] == "dark", rec
    morgul("simulate", *common, "--port", port, "--rate", 200)
    rec = s.wait_run_ended("dark0")
    assert rec["exit_status"] == 0 and rec["counters"]["dark"] == 60, rec
    assert rec["files"]["calibration"] == str(tmp / "live.h5")
    a, b = read_cal(tmp / "off.h5", "M000"), read_cal(tmp / "live.h5", "M000")
    assert b["attrs"]["source_files"] == b"live (morgul serve)"
    for k in ("pedestal", "pedestal_rms", "frames_used", "mask"):
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    assert not list(s.data.glob("dark0_*.h5"))  # a dark run writes no frames


def test_full_disk(tmp, port):
    """Arming is refused when the run's frames would not fit; a run that
    fills the disk ends with valid files, says why, and the service is
    ready again."""
    from conftest import run as sh
    small = tmp / "small"
    small.mkdir()
    if sh("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", small, check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        s = Service(small, port, "--min-free", 0.001).start()
        status, body = s.call("POST", "/api/arm", {"frames": 100})
        assert status == 507 and "not enough free space" in body["error"], body
        status, rec = s.call("POST", "/api/arm", {"name": "fills"})
        assert status == 200, rec
        morgul("simulate", "--modules", 2, "--port", port, "-n", 40, "--content", "dark", "--rate", 500)
        rec = s.wait_run_ended("fills")
        assert rec["state"] == "failed" and rec["exit_status"] == 1, rec
        assert "disk is full" in rec["error"]
        st = s.get("/api/status")
        assert st["state"] == "error" and "disk is full" in st["error"]
        r = read_run(small / "data" / "fills")
        n = r["data"].shape[0]
        assert 0 < n < 40 and r["run"]["frames_written"] == n
        assert s.call("POST", "/api/arm", {"frames": 100})[0] == 507  # still full: refused, nothing made
    finally:
        for sv in _services:
            if sv.p and sv.p.poll() is None:
                sv.p.kill()
                sv.p.wait()
        sh("umount", small, check=False)


def test_calibration_tables_kept_only_while_the_file_is_unchanged(tmp, port):
    """A corrected run leaves its conversion tables for the next run with the
    same calibration file and energy; a changed file or another energy is
    read afresh, and every run's images follow the constants it should."""
    import h5py
    from test_metadata import calibration
    cal = calibration(tmp, "cal.h5", "M000")
    s = Service(tmp, port, modules=1).start()

    def corrected_run(name, energy):
        status, rec = s.call("POST", "/api/arm", {"name": name, "frames": 5, "calibration": str(cal),
                                                  "energy_kev": energy, "type": "float32"})
        assert status == 200, rec
        morgul("simulate", "--port", port, "-n", 5, "--content", "dark")
        assert s.wait_run_ended(name)["exit_status"] == 0
        with h5py.File(s.data / f"{name}_master.h5") as f:
            data = f["/entry/data/data"][()]
        return data, (s.data / f"{name}.log").read_text()

    first, log1 = corrected_run("c1", 12.4)
    again, log2 = corrected_run("c2", 12.4)
    assert "tables of the previous run" not in log1 and "tables of the previous run" in log2
    np.testing.assert_array_equal(first, again)
    other, log3 = corrected_run("c3", 6.2)  # another energy: twice the photons
    assert "tables of the previous run" not in log3
    np.testing.assert_allclose(other[np.isfinite(other)], 2 * first[np.isfinite(first)], rtol=1e-5, atol=1e-4)
    # the file changes (pedestals 100 ADU higher): read afresh, and the images show it
    with h5py.File(tmp / "ped.h5", "a") as f:
        f["gains"][0] = f["gains"][0] + 100
    morgul("calib", "import", "-c", cal, "--module", "M000", "--row", 0, "--pedestal", tmp / "ped.h5")
    changed, log4 = corrected_run("c4", 6.2)  # the energy the kept tables have: only the file differs
    assert "tables of the previous run" not in log4
    ok = np.isfinite(changed) & np.isfinite(other)
    assert ok.sum() > 1000
    # 100 ADU more G0 pedestal at 41 ADU/keV and 6.2 keV: 0.393 photons fewer in every G0 pixel
    shift = other[ok] - changed[ok]
    assert abs(np.median(shift) - 100 / (41 * 6.2)) < 1e-3, np.median(shift)
    assert (shift > 0).mean() > 0.99
