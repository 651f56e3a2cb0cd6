"""The service under systemd's protocols, without systemd: the unit file in
the repository passes `systemd-analyze verify`; `morgul serve` tells
NOTIFY_SOCKET that it is ready only once its API answers, pings the
watchdog while it is healthy, and says it is stopping on SIGTERM."""
import os
import shutil
import signal
import socket
import subprocess
import urllib.request

import pytest

from conftest import MORGUL, ROOT

UNIT = ROOT / "service" / "morgul.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp):
    # the unit as installed, with ExecStart pointing at this build
    unit = tmp / "morgul.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/morgul", str(MORGUL)))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    # systemd-analyze also reports on the machine's own units; only this unit's lines count
    mine = [line for line in p.stdout.splitlines() if "morgul.service" in line]
    assert not mine, p.stdout
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "KillSignal=SIGTERM"):
        assert line in text


def test_notify_ready_watchdog_stopping(tmp, port):
    addr = str(tmp / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=addr, WATCHDOG_USEC="400000")
    env.pop("WATCHDOG_PID", None)  # else it must name the service's own process
    p = subprocess.Popen([str(MORGUL), "serve", "--data-dir", tmp / "data", "--port", str(port), "--http",
                          f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg, msg
        # ready means the API answers
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:
            assert r.status == 200
        pings = 0
        while pings < 3:  # the watchdog pings at half of WATCHDOG_USEC
            m = sock.recv(4096).decode()
            pings += "WATCHDOG=1" in m
        p.send_signal(signal.SIGTERM)
        m = sock.recv(4096).decode()
        while "STOPPING=1" not in m:
            m = sock.recv(4096).decode()
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        sock.close()
