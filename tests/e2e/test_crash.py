"""Files that survive a crash: `morgul receive` and `morgul replay` killed
with SIGKILL before the first data file rolls over, after it, and many
times while master files are being replaced; every frame written more than a
second before the kill is read back pixel-exact (with SWMR read access
before `morgul repair`, plainly after it), the master file exists and says
the run did not end, repair finishes the files, and a rerun with the same
name finishes them too and refuses to overwrite them.  The files are read
while the run goes on."""
import os
import re
import signal
import subprocess
import textwrap

import h5py
import numpy as np
import pytest

from conftest import BUILD, FAILED, MORGUL, OK, Receiver, morgul, pattern, read_run, run

SLOW_DISK = BUILD / "tests" / "libslow_disk.so"

READ_SWMR = textwrap.dedent("""
    import sys, h5py, numpy as np
    f = h5py.File(sys.argv[1], "r", swmr=True)
    d, fn = f["data"], f["frames/frame_number"]
    n = min(d.shape[0], fn.shape[0])
    print(n, f.attrs["morgul_status"].decode())
    np.save(sys.argv[2], d[:n, 0, 100:104, :])
    np.save(sys.argv[3], fn[:n, 0])
""")


def read_swmr(tmp, master):
    """Frames read through the master with SWMR read access, in a process of
    its own (HDF5 keeps files open per process): (status, frame numbers,
    rows 100-103 of module 0)."""
    script = tmp / "read_swmr.py"
    script.write_text(READ_SWMR)
    out = run("/usr/bin/python3", script, master, tmp / "rows.npy", tmp / "fn.npy").stdout.split()
    return out[1], np.load(tmp / "fn.npy"), np.load(tmp / "rows.npy")


def check_rows(fns, rows):
    for i, fn in enumerate(fns):
        np.testing.assert_array_equal(rows[i], pattern(0, int(fn))[100:104], err_msg=f"frame {fn}")


def written_lines(p):
    """The `written N` of each progress line the process prints."""
    for line in p.stdout:
        m = re.search(r"\] frames \d+ .* written (\d+)", line)
        if m:
            yield int(m.group(1))


def kill_after(p, at_least):
    """Waits for a progress line with at least `at_least` frames written,
    then for the next one (a second later): frames written by the first are
    over a second old.  Kills the process then; returns that count."""
    lines = written_lines(p)
    for w in lines:
        if w >= at_least:
            break
    next(lines)
    p.send_signal(signal.SIGKILL)
    p.wait()
    return w


@pytest.mark.parametrize("fpf", [1000, 10])
def test_receive_killed(tmp, port, fpf):
    """SIGKILL before the first rollover (1000 frames per file) and after
    several (10): the frames written over a second before are there."""
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix, "--progress", "--frames-per-file", fpf).start()
    sim = subprocess.Popen([str(MORGUL), "simulate", "--port", str(port), "-n", "400", "--rate", "40"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        old = kill_after(rx.p, 30)
    finally:
        sim.kill()
        sim.wait()
    master = tmp / "run_master.h5"
    assert master.exists() and (tmp / "run_reserve.tmp").exists()
    status, fns, rows = read_swmr(tmp, master)
    assert status == "writing"
    assert len(fns) >= old and list(fns) == list(range(1, len(fns) + 1))
    check_rows(fns, rows)
    # repaired: plain readers (h5py without SWMR, h5dump) read it all, and it says it was interrupted
    out = morgul("repair", prefix).stdout
    assert f"{len(fns)} frames" in out or "frames" in out
    r = read_run(prefix)
    assert len(r["index"]) >= len(fns) and r["run"]["interrupted"] == 1
    assert r["run"]["frames_written"] == len(r["index"])
    for i in range(len(r["index"])):
        np.testing.assert_array_equal(r["data"][i, 0], pattern(0, i + 1))
    with h5py.File(master, "r") as f:
        assert f.attrs["morgul_status"] == b"interrupted"
    assert not (tmp / "run_reserve.tmp").exists()
    run("h5dump", "-H", tmp / "run_data_000001.h5")
    assert "nothing to repair" in morgul("repair", prefix).stdout


def test_replay_killed_repeatedly_while_masters_are_replaced(tmp):
    """replay --realtime with 2 frames per file replaces its master file about
    every half second; killed at five different moments, a master is always
    there and reaches every frame written over a second before."""
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 400, "--rate", 50, "--pcap", cap)
    for k in range(5):
        prefix = tmp / f"r{k}"
        p = subprocess.Popen([str(MORGUL), "replay", str(cap), "-o", str(prefix), "--realtime", "--progress",
                              "--frames-per-file", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        old = kill_after(p, 10 + 17 * k)
        status, fns, rows = read_swmr(tmp, f"{prefix}_master.h5")
        assert status == "writing" and len(fns) >= old
        assert list(fns) == list(range(1, len(fns) + 1))
        check_rows(fns, rows)


def slow_disk_env(**settings):
    """The environment for a morgul whose disk syncs through tests/slow_disk.c
    (the sanitizer runtime told it need not be the first library)."""
    return dict(os.environ, LD_PRELOAD=str(SLOW_DISK), **settings,
                ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")


def test_killed_while_the_disk_is_slow_to_sync(tmp):
    """Every sync of a data file to the disk takes 4 s (what a busy machine's
    journal does now and then): the master is replaced before the writer
    waits for the disk, so a kill during the wait finds every frame written
    before it.  (It was replaced after: a busy run's master reached 2 frames
    of 24.)"""
    cap, prefix = tmp / "c.pcap", tmp / "r"
    morgul("simulate", "-n", 400, "--rate", 50, "--pcap", cap)
    p = subprocess.Popen([str(MORGUL), "replay", str(cap), "-o", str(prefix), "--realtime", "--progress",
                          "--frames-per-file", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=slow_disk_env(MG_SLOW_SYNC_MS="4000"))
    old = kill_after(p, 10)
    status, fns, rows = read_swmr(tmp, f"{prefix}_master.h5")
    assert status == "writing" and len(fns) >= old
    assert list(fns) == list(range(1, len(fns) + 1))
    check_rows(fns, rows)


def test_every_data_file_reaches_the_disk(tmp):
    """A run over 20 data files, shorter than the half second between syncs:
    every data file is synced to the disk, and the master that says the run
    is complete is synced after them (a power loss never leaves a complete
    master over data the disk does not have)."""
    cap, prefix, log = tmp / "c.pcap", tmp / "r", tmp / "synced.txt"
    morgul("simulate", "-n", 40, "--pcap", cap)
    out = run(MORGUL, "replay", cap, "-o", prefix, "--frames-per-file", 2, env=slow_disk_env(MG_SYNC_LOG=str(log)))
    synced = log.read_text().split()
    files = sorted(str(x) for x in tmp.glob("r_data_*.h5"))
    assert len(files) == 20, out.stdout
    assert set(files) <= set(synced), sorted(set(files) - set(synced))
    master = str(tmp / "r_master.h5")
    last_master = max(i for i, x in enumerate(synced) if x == master)
    assert all(synced.index(x) < last_master for x in files)


HOLD = textwrap.dedent("""
    import pathlib, sys, time, h5py
    print("ready", flush=True)
    while True:
        try:
            f = h5py.File(sys.argv[1], "r", swmr=True)
            break
        except OSError:
            time.sleep(0.01)
    print("open", flush=True)
    if len(sys.argv) == 2:  # held until stdin closes
        sys.stdin.read()
    else:  # held until the sync log shows it synced while open, then closed and synced
        log = pathlib.Path(sys.argv[2])
        while not (log.exists() and log.read_text().split().count(sys.argv[1]) == 2):
            time.sleep(0.01)
        f.close()
        with open(log, "a") as out:
            out.write("reader-let-go\\n")
        print("closed", flush=True)
""")


def test_a_data_file_converted_late_is_synced_again(tmp):
    """A reader holds data file 1 open when it closes, past the syncs that
    put it on the disk: the file is converted to the 1.8 format once the
    reader lets go, and synced again as it is then."""
    cap, prefix, log, script = tmp / "c.pcap", tmp / "r", tmp / "synced.txt", tmp / "hold.py"
    script.write_text(HOLD)
    morgul("simulate", "-n", 60, "--rate", 10, "--pcap", cap)
    first = str(tmp / "r_data_000001.h5")
    holder = subprocess.Popen(["/usr/bin/python3", str(script), first, str(log)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    out = run(MORGUL, "replay", cap, "-o", prefix, "--realtime", "--frames-per-file", 10,
              env=slow_disk_env(MG_SYNC_LOG=str(log)))
    assert [holder.stdout.readline().strip() for _ in range(2)] == ["open", "closed"]
    holder.wait()
    synced = log.read_text().split()
    assert first in synced[synced.index("reader-let-go"):], out.stdout
    with h5py.File(tmp / "r_master.h5", "r") as f:
        assert "data_files_1_10_format" not in f["run"] and f["run/frames_written"][()] == 60


@pytest.mark.parametrize("begun", ["no datasets", "not HDF5"])
def test_repair_a_data_file_begun_at_the_kill(tmp, begun):
    """A kill between a rollover's new data file and its datasets (seen on a
    busy machine) leaves a last data file with no frames: repair takes it out
    of the run (removed; one that is not even HDF5 kept aside) and finishes
    the rest.  The state is made exactly: a run's files marked as writing, and
    the next data file begun."""
    cap, prefix = tmp / "c.pcap", tmp / "run"
    morgul("simulate", "-n", 25, "--pcap", cap)
    morgul("replay", cap, "-o", prefix, "--frames-per-file", 10)
    with h5py.File(tmp / "run_master.h5", "a") as f:
        f.attrs["morgul_status"] = np.bytes_(b"writing")  # fixed-length, as morgul writes it
    nxt = tmp / "run_data_000004.h5"
    if begun == "no datasets":
        h5py.File(nxt, "w").close()
    else:
        nxt.write_bytes(b"half a superblock " * 10)
    out = morgul("repair", prefix).stdout
    assert f"{nxt} was begun when the run died" in out, out
    assert not nxt.exists()
    assert (tmp / "run_data_000004.h5.unreadable").exists() == (begun == "not HDF5")
    r = read_run(prefix)
    assert r["run"]["interrupted"] == 1 and r["run"]["frames_written"] == 25 == len(r["index"])
    for i in range(25):
        np.testing.assert_array_equal(r["data"][i, 0], pattern(0, i + 1))
    # a data file without frames that is not the last is damage, not a kill: refused, nothing removed
    with h5py.File(tmp / "run_master.h5", "a") as f:
        f.attrs["morgul_status"] = np.bytes_(b"writing")  # fixed-length, as morgul writes it
    (tmp / "run_data_000002.h5").unlink()
    h5py.File(tmp / "run_data_000002.h5", "w").close()
    p = morgul("repair", prefix, check=False)
    assert p.returncode == 1 and "run_data_000002.h5 has no frames dataset" in p.stdout
    assert (tmp / "run_data_000002.h5").exists() and (tmp / "run_data_000003.h5").exists()


def test_rerun_finishes_and_keeps_the_files(tmp, port):
    """A run with the name of one that died finishes that one's files and
    refuses to overwrite them."""
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix, "--progress").start()
    sim = subprocess.Popen([str(MORGUL), "simulate", "--port", str(port), "-n", "400", "--rate", "40"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kill_after(rx.p, 10)
    finally:
        sim.kill()
        sim.wait()
    p = morgul("receive", "--port", port, "-o", prefix, check=False)
    assert p.returncode == FAILED
    assert "did not end; its files have been finished" in p.stdout
    r = read_run(prefix)  # plainly readable now
    assert r["run"]["interrupted"] == 1 and len(r["index"]) >= 10


def test_read_while_the_run_goes_on(tmp, port):
    """Readers open the master while frames are written (SWMR read access)
    and see the frames written so far; the finished run says complete."""
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix, "--progress", "--frames-per-file", 25, "-n", 300).start()
    sim = subprocess.Popen([str(MORGUL), "simulate", "--port", str(port), "-n", "300", "--rate", "50"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = written_lines(rx.p)
    for w in lines:
        if w >= 40:
            break
    next(lines)
    status, fns, rows = read_swmr(tmp, tmp / "run_master.h5")
    assert status == "writing" and len(fns) >= w
    check_rows(fns, rows)
    sim.wait()
    assert rx.wait() == OK, rx.output
    with h5py.File(tmp / "run_master.h5", "r") as f:
        assert f.attrs["morgul_status"] == b"complete"
    assert len(read_run(prefix)["index"]) == 300


def test_reader_holding_a_data_file(tmp, port):
    """A reader that keeps a data file open while the writer closes it (its
    file lock keeps the writer from converting it to the 1.8 format) neither
    stops nor slows the run: the file stays in the 1.10 format, complete,
    and the master counts it."""
    script = tmp / "hold.py"
    script.write_text(HOLD)
    rx = Receiver("--port", port, "-o", tmp / "run", "--frames-per-file", 10, "-n", 30).start()
    holder = subprocess.Popen(["/usr/bin/python3", str(script), str(tmp / "run_data_000001.h5")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert [holder.stdout.readline().strip() for _ in range(2)] == ["ready", "open"]
    morgul("simulate", "--port", port, "-n", 30, "--rate", 100)
    assert rx.wait() == OK, rx.output
    holder.stdin.close()
    holder.wait()
    with h5py.File(tmp / "run_master.h5", "r") as f:
        assert f["run/data_files_1_10_format"][()] == 1 and f["run/frames_written"][()] == 30
    out = read_run(tmp / "run")
    assert out["data"].shape[0] == 30
    for i, fn in enumerate(out["frame_number"][:, 0]):
        np.testing.assert_array_equal(out["data"][i, 0], pattern(0, int(fn)))
    assert "intact" in morgul("verify", tmp / "run").stdout
