"""Runs start cleanly, end for the right reason and say so: readiness
signals, the idle timeout counted from listening, failed starts that leave
nothing behind, output directories made, signals (SIGINT, SIGTERM, SIGHUP,
SIGPIPE) and stop requests during set-up, exit statuses and --max-loss, frame
buffers sized from the rate and refused beyond the machine's memory, input
hygiene (decimal numbers, exact names for --overwrite), partial readout and
receiving alone."""
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from conftest import (FAILED, LOSS, MORGUL, OK, USAGE, Receiver, jf_packet, morgul, pattern, read_run, run,
                      summary_counts)


def wait_for_file(path, proc, timeout=60):
    """Waits until `path` exists (a readiness file) or the process ends."""
    t = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {path} appeared")
        if time.monotonic() - t > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


def test_progress_with_a_startup_error(tmp):
    """--progress and an output that cannot be made: the real message, exit 1, no crash."""
    p = morgul("receive", "--progress", "-o", "/proc/morgul-test/x/run", "--idle-timeout", 1, check=False)
    assert p.returncode == FAILED, p.stdout
    assert "cannot create the output directory /proc/morgul-test" in p.stdout


def test_failed_start_leaves_nothing(tmp, port):
    """A port in use fails the run before any directory or file is made."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", port))
    try:
        p = morgul("receive", "--port", port, "-o", tmp / "new" / "dir" / "run", check=False)
    finally:
        busy.close()
    assert p.returncode == FAILED
    assert f"cannot listen on 127.0.0.1:{port}" in p.stdout and "another receiver" in p.stdout
    assert not (tmp / "new").exists()


def test_output_directories_are_made_and_ready_file(tmp, port):
    """-o into directories that do not exist yet; --ready-file appears once
    every port listens and names them."""
    ready = tmp / "ready"
    prefix = tmp / "a" / "b" / "run"
    rx = Receiver("--modules", 2, "--port", port, "-o", prefix, "-n", 10, "--ready-file", ready).start()
    text = ready.read_text()
    assert text.startswith("ready pid ")
    assert f"listening 127.0.0.1:{port} module M000 interface 0" in text
    assert f"listening 127.0.0.1:{port + 1} module M001 interface 0" in text
    morgul("simulate", "--modules", 2, "--port", port, "-n", 10, "--rate", 200)
    assert rx.wait() == OK, rx.output
    assert read_run(prefix)["run"]["frames_complete"] == 10


def test_idle_timeout_counts_from_listening(tmp, port):
    """Set-up that takes longer than the idle timeout (3 GB of frame buffers
    to touch) does not end the run before its data come."""
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix, "-n", 20, "--idle-timeout", 0.5, "--buffer-frames", 3000).start()
    # the packets come from this process as soon as the receiver is ready: a sender process's own start
    # (an ASan build on a busy machine) took longer than the 0.5 s the idle timeout gives
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for f in range(1, 21):
        for p in range(128):
            s.sendto(jf_packet(f, p), ("127.0.0.1", port))
    s.close()
    assert rx.wait() == OK, rx.output
    assert "run ended: all requested frames done" in rx.output
    c = summary_counts(rx.output)
    assert c["frames complete"] == 20
    # the speed counts from the first packet, not from the start of the process
    seconds = float(rx.output.split("speed")[1].split()[0])
    setup = float(rx.output.split("set-up")[1].split()[0])
    assert seconds < 1.0 < setup or seconds < setup


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_end_with_valid_files(tmp, port, sig):
    """SIGINT, SIGTERM and SIGHUP (the ssh session dropped) end an open run
    with every frame written and the files valid."""
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix).start()
    morgul("simulate", "--port", port, "-n", 15, "--rate", 300)
    rx.p.send_signal(sig)
    assert rx.wait() == OK, rx.output
    assert "run ended: stopped by signal" in rx.output
    r = read_run(prefix)
    assert r["run"]["frames_complete"] == 15
    np.testing.assert_array_equal(r["data"][14, 0], pattern(0, 15))


def test_sigpipe_is_ignored(tmp, port):
    """--progress into a pipe whose reader is gone (| tee, then tee killed):
    the run goes on and ends with valid files."""
    prefix, ready = tmp / "run", tmp / "ready"
    p = subprocess.Popen([str(MORGUL), "receive", "--port", str(port), "-o", str(prefix), "-n", "30", "--progress",
                          "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_file(ready, p)
    p.stdout.close()  # the reader goes away
    morgul("simulate", "--port", port, "-n", 30, "--rate", 30)  # a second: progress lines are written meanwhile
    assert p.wait(timeout=60) == OK
    r = read_run(prefix)
    assert r["run"]["frames_complete"] == 30


def test_stop_during_setup(tmp, port):
    """Ctrl-C while gigabytes of frame buffers are being touched ends the run
    at once, and nothing is left behind."""
    p = subprocess.Popen([str(MORGUL), "receive", "--port", str(port), "-o", str(tmp / "out" / "run"),
                          "--buffer-frames", "4000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("frame buffers:"):
            break
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    out = "".join(lines) + out
    assert p.returncode == FAILED, out
    assert "stopped during set-up" in out and "receiving on" not in out
    assert not (tmp / "out").exists()


def test_buffers_beyond_the_machine_are_refused(tmp):
    p = morgul("receive", "--no-write", "--buffer-frames", 16000000, check=False)
    assert p.returncode == FAILED
    assert "GiB and this machine has" in p.stdout and "available" in p.stdout
    # a reorder window the buffers cannot hold is refused with the figure to give
    p = morgul("receive", "--no-write", "--window", 4096, check=False)
    assert p.returncode == FAILED and "too few" in p.stdout and "give at least" in p.stdout


def test_numbers_are_decimal(tmp):
    """050001 is port 50001, not octal 20481."""
    out = morgul("plan", "--port", "050001").stdout
    assert "127.0.0.1:50001" in out and "20481" not in out
    p = morgul("receive", "--port", "0x10", "--no-write", check=False)
    assert p.returncode == USAGE and "whole number" in p.stdout


def test_overwrite_removes_only_this_runs_names(tmp):
    """-o 'run[12]' --overwrite: glob characters are plain characters; only
    run[12]'s own files go (and its stale later acquisitions)."""
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 3, "--pcap", cap)
    others = ["run1_master.h5", "run2_master.h5", "run1_data_000001.h5", "run[12]x_master.h5",
              "run[12]_data_000001.h5.bak", "run[12]_notes.txt"]
    for name in others:
        (tmp / name).write_text("keep me")
    mine = ["run[12]_master.h5", "run[12]_data_000007.h5", "run[12]_acq002_master.h5",
            "run[12]_acq002_data_000001.h5"]
    for name in mine:
        (tmp / name).write_text("stale")
    p = morgul("replay", cap, "-o", tmp / "run[12]", check=False)
    assert p.returncode == FAILED and "--overwrite" in p.stdout
    morgul("replay", cap, "-o", tmp / "run[12]", "--overwrite")
    for name in others:
        assert (tmp / name).read_text() == "keep me", name
    assert not (tmp / "run[12]_data_000007.h5").exists()
    assert not (tmp / "run[12]_acq002_master.h5").exists()
    assert read_run(tmp / "run[12]")["run"]["frames_complete"] == 3


@pytest.mark.parametrize("text,line,words", [
    ("[detector]\nport = 5\nport = 6\n[m]\nmodule = M1\n", 3, "'port' was already given on line 2"),
    ("[m]\nmodule = M1\n[m]\nmodule = M2\n", 3, "[m] was already given on line 1"),
    ("[detector]\nbind = 0.0.0.0\n[m]\nmodule = M1\nports = 50001\n[n]\nmodule = M2\nbind = 127.0.0.1\n"
     "ports = 50001\n", 6, "module M2 listens on 127.0.0.1 port 50001, and so does module M1 (0.0.0.0, line 3)"),
])
def test_ambiguous_config_is_refused(tmp, text, line, words):
    ini = tmp / "det.ini"
    ini.write_text(text)
    p = morgul("receive", "--config", ini, "-o", tmp / "r", check=False)
    assert p.returncode == USAGE
    assert f"det.ini:{line}:" in p.stdout and words in p.stdout
    assert not list(tmp.glob("r_*"))


def test_max_loss(tmp):
    """A known loss accepted with --max-loss: exit 0, and the summary says
    it was within it; without, exit 3."""
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 20, "--pcap", cap, "--drop", 0.01, "--seed", 2)
    p = morgul("replay", cap, "-o", tmp / "a", status=LOSS)
    assert "DATA LOST" in p.stdout
    p = morgul("replay", cap, "-o", tmp / "b", "--max-loss", 0.05)
    assert "loss within --max-loss" in p.stdout
    p = morgul("replay", cap, "-o", tmp / "c", "--max-loss", 0.001, status=LOSS)


def test_ended_early_and_no_data(tmp, port):
    """-n 50 and the detector sends 20: ended early, exit 3; nothing at all:
    exit 3 and says so."""
    rx = Receiver("--port", port, "-o", tmp / "a", "-n", 50, "--idle-timeout", 1).start()
    morgul("simulate", "--port", port, "-n", 20, "--rate", 200)
    assert rx.wait() == LOSS
    assert "ENDED EARLY: 20 of the 50 frames asked for" in rx.output
    assert "30 frames asked for never came" in rx.output
    rx = Receiver("--port", port, "-o", tmp / "b", "--idle-timeout", 0.3).start()
    assert rx.wait() == LOSS
    assert "NO DATA" in rx.output and "run ended: idle timeout" in rx.output


@pytest.mark.parametrize("where", ["option", "config"])
def test_partial_readout(tmp, port, where):
    """readnrows 64: each module sends only the 16 packets around its centre;
    those frames are complete."""
    args = ["--readnrows", 64]
    if where == "config":
        ini = tmp / "det.ini"
        ini.write_text(f"[detector]\nport = {port}\nbind = 127.0.0.1\ninterfaces = 2\nreadnrows = 64\n\n"
                       "[d-00]\nmodule = M420\n")
        args = ["--config", ini]
    else:
        args += ["--interfaces", 2, "--port", port]
    rx = Receiver(*args, "-o", tmp / "r", "-n", 10).start()
    morgul("simulate", *args, "-n", 10, "--rate", 200)
    assert rx.wait() == OK, rx.output
    r = read_run(tmp / "r")
    assert r["run"]["frames_complete"] == 10 and r["run"]["expected_packets_per_module"] == 16
    assert (r["packets_received"] == 16).all()
    rows = slice(4 * 56, 4 * 72)
    np.testing.assert_array_equal(r["data"][3, 0, rows], pattern(0, 4)[rows])
    assert (r["data"][3, 0, :4 * 56] == 0xFFFF).all()


def test_receive_only(tmp, port):
    """--no-write: frames are received and assembled, nothing is compressed
    or written."""
    rx = Receiver("--port", port, "--no-write", "-n", 20).start()
    morgul("simulate", "--port", port, "-n", 20, "--rate", 300)
    assert rx.wait() == OK, rx.output
    c = summary_counts(rx.output)
    assert c["frames complete"] == 20 and c["frames written"] == 0
    assert "compressed" not in rx.output
    assert not os.listdir(tmp)
