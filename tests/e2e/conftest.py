"""Shared fixtures of the end-to-end tests: where the morgul binary and the
test data are, and helpers to run commands and read files."""
import fcntl
import functools
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MORGUL_BUILD", ROOT / "build"))
MORGUL = BUILD / "morgul"
SHARED = ROOT.parent / "shared" / "data"
PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"

# Readers use the standard plugin, never morgul's own filter.
os.environ.setdefault("HDF5_PLUGIN_PATH", PLUGIN_DIR)


# morgul's exit statuses (docs/user-guide.md)
OK, FAILED, USAGE, LOSS, REFUSED = 0, 1, 2, 3, 4


def run(*args, check=True, timeout=120, status=0, **kw):
    """Runs a command; returns the CompletedProcess (stdout+stderr as text).
    With check, the exit status must be `status`."""
    p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != status:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}, not {status}:\n{p.stdout}")
    return p


def morgul(*args, **kw):
    return run(MORGUL, *args, **kw)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def pytest_configure(config):
    """The directory that holds every test file's own (--basetemp) exists."""
    if config.option.basetemp:
        pathlib.Path(config.option.basetemp).parent.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    """A test file's temporary directory (its runs' files: gigabytes for some)
    goes once every test in it passed, so a whole suite does not pile up tens
    of gigabytes (each test file has a directory of its own, tests/CMakeLists.txt);
    what failed stays to be looked at."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if exitstatus == 0 and factory is not None and session.config.option.basetemp:
        shutil.rmtree(factory.getbasetemp(), ignore_errors=True)


def _free(p):
    """Port p is free for UDP and TCP on loopback now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _next_block(size=8, first=52000, last=60000):
    """A block of `size` ports no other test process holds: the blocks are
    dealt from a counter file shared (under a lock) by every test process of
    this machine, so tests run side by side (ctest -j) never share one, and a
    block with a port in use by anything else is passed over."""
    path = pathlib.Path(tempfile.gettempdir()) / "morgul-test-ports"
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        for _ in range((last - first) // size):
            f.seek(0)
            text = f.read().strip()
            p = int(text) if text.isdigit() and first <= int(text) < last - size else first
            f.seek(0)
            f.truncate()
            f.write(str(p + size))
            f.flush()
            if all(_free(q) for q in range(p, p + size)):
                return p
    raise RuntimeError("no free block of loopback ports between %d and %d" % (first, last))


@pytest.fixture
def port():
    """A fresh block of 8 loopback ports (UDP and TCP) for each test, used by no other test."""
    return _next_block()


def pattern(module, frame_number):
    """The words `morgul simulate --content pattern` sends for one module
    frame (mirrors mg_sim_pattern_word in include/morgul/simulate.h); read
    only (copy it to change it)."""
    return _pattern(int(module) & 0x1F, int(frame_number) & 0xFF)


@functools.lru_cache(maxsize=2048)
def _pattern(module, low):
    pix = np.arange(512 * 1024, dtype=np.uint64)
    x = (pix + (low << 19) + (module << 27)) & 0xFFFFFFFF
    out = (((x * 2654435761) & 0xFFFFFFFF) >> 16).astype(np.uint16).reshape(512, 1024)
    out.flags.writeable = False
    return out


def read_run(prefix):
    """Everything a run wrote, read through the master file with the
    standard plugin."""
    with h5py.File(f"{prefix}_master.h5", "r") as f:
        out = {k: f[f"frames/{k}"][()] for k in f["frames"]}
        out["data"] = f["data"][()]
        out["run"] = {k: int(f[f"run/{k}"][()]) for k in f["run"]}
        out["modules"] = [n.decode() for n in f["detector/module_name"][()]]
    return out


def summary_counts(text):
    """The counters of a run's printed summary, by name ("frames complete",
    "packets late", "kernel drops", ...)."""
    import re
    out = {}
    for line in text.splitlines():
        m = re.match(r"(frames|packets)\s+(.*)", line)
        if m:
            head, rest = m.group(1), m.group(2)
        elif line.startswith("          kernel drops"):
            head, rest = "packets", line.strip()
        else:
            continue
        for name, value in re.findall(r"([a-z][a-z ]*?) (\d+)", rest):
            out[f"{head} {name.strip()}"] = int(value)
    return out


def mask_bits(mask_row):
    """The 128 per-packet flags of one module's packet_mask (16 bytes)."""
    return np.unpackbits(np.asarray(mask_row, dtype=np.uint8), bitorder="little").astype(bool)


_receivers = []


class Receiver:
    """`morgul receive` in the background; start() returns once it listens
    (its readiness line).  A failing test prints every receiver's output."""

    def __init__(self, *args):
        self.args = [str(MORGUL), "receive", *map(str, args)]
        self.p = None
        self.output = ""
        _receivers.append(self)

    def start(self):
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in self.p.stdout:
            lines.append(line)
            if line.startswith("receiving on"):
                break
        else:
            self.p.wait()
            self.output = "".join(lines)
            raise AssertionError(f"receiver did not start (exit {self.p.returncode}):\n" + self.output)
        self.output = "".join(lines)
        return self

    def wait(self, timeout=60):
        try:
            rest, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rest, _ = self.p.communicate()
            self.output += rest
            raise AssertionError(f"receiver did not end within {timeout} s:\n{self.output}")
        self.output += rest
        return self.p.returncode


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing end-to-end test shows what its receivers printed."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        if rep.failed:
            for i, r in enumerate(_receivers):
                if r.p and r.p.poll() is None:
                    r.p.kill()
                    rest, _ = r.p.communicate()
                    r.output += rest
                rep.sections.append((f"receiver {i}: {' '.join(r.args[1:])}", r.output))
        _receivers.clear()


# ---- captures the tests make and edit (pcap, Ethernet/IPv4/UDP as `morgul simulate --pcap` writes them) ----

import struct  # noqa: E402

JF_HEADER = struct.Struct("<QIIQQHHHHIHBB")  # the JUNGFRAU packet header, 48 bytes


def read_capture(path):
    """[(ts_ns, dst_port, payload)] of a pcap file (micro- or nanosecond)."""
    data = pathlib.Path(path).read_bytes()
    magic, = struct.unpack_from("<I", data)
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    nano = magic == 0xA1B23C4D
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ihl = (frame[14] & 15) * 4
        port, = struct.unpack_from("!H", frame, 14 + ihl + 2)
        out.append((sec * 10**9 + (frac if nano else frac * 1000), port, frame[14 + ihl + 8:]))
    return out


def write_capture(path, records):
    """A nanosecond pcap of (ts_ns, dst_port, payload) records, in the order given."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        for ts, port, payload in records:
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0x4000, 64, 17, 0,
                             bytes([127, 0, 0, 2]), bytes([127, 0, 0, 1]))
            udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0)
            frame = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]) + b"\x08\x00" + ip + udp + payload
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)))
            f.write(frame)


def jf_header(payload):
    """(frame_number, packet_number, bunch_id, timestamp, row, column) of a JUNGFRAU payload."""
    h = JF_HEADER.unpack_from(payload)
    return h[0], h[2], h[3], h[4], h[6], h[7]


def jf_packet(frame, packet, row=0, col=0, pixels=b"\0" * 8192, bunch=0, stamp=0):
    return JF_HEADER.pack(frame, 100, packet, bunch, stamp, 0, row, col, 0, 0, 0, 3, 2) + pixels


def with_frame_number(payload, frame):
    return struct.pack("<Q", frame) + payload[8:]


# ---- `morgul serve` driven through its API (test_service, test_stream, test_web_page, ...) ----

import json  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

_services = []


class Service:
    def __init__(self, tmp, port, *args, modules=2):
        self.url = f"http://127.0.0.1:{port}"
        self.data = tmp / "data"
        self.port = port
        self.modules = modules
        self.args = [str(MORGUL), "serve", "--data-dir", str(self.data), "--modules", str(modules),
                     "--port", str(port), "--http", f"127.0.0.1:{port}", *map(str, args)]
        self.token = None
        self.p = None
        self.output = ""
        _services.append(self)

    def start(self):
        self.p = subprocess.Popen(self.args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in self.p.stderr:
            self.output += line
            if line.startswith("serve: detector"):
                return self
        self.p.wait()
        raise AssertionError(f"service did not start (exit {self.p.returncode}):\n{self.output}")

    def call(self, method, path, body=None, raw=None, token=None):
        """(status, decoded JSON or text) of one request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        tok = token if token is not None else self.token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text, ctype = r.status, r.read().decode(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, text, ctype = e.code, e.read().decode(), e.headers.get("Content-Type", "")
        return status, json.loads(text) if ctype.startswith("application/json") else text

    def get(self, path):
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def wait_for(self, what, check, timeout=60):
        """Polls the status until check(status) holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.get("/api/status")
            if check(st):
                return st
            time.sleep(0.05)
        raise AssertionError(f"service never reached: {what}; last status {json.dumps(st, indent=1)}")

    def wait_run_ended(self, name, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status, r = self.call("GET", f"/api/runs/{name}")
            if status == 200 and r["state"] != "running":
                return r
            time.sleep(0.05)
        raise AssertionError(f"run {name} did not end")

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            _, err = self.p.communicate(timeout=60)
            self.output += err
        return self.p.returncode

    def run_log(self):
        return [json.loads(line) for line in (self.data / "runs.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def _stop_services():
    """Every service a test started is gone after it, whatever the test did."""
    yield
    for s in _services:
        if s.p and s.p.poll() is None:
            s.p.kill()
            s.p.wait()
    _services.clear()


