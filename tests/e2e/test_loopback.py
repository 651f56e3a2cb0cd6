"""simulate -> receive over real UDP sockets on loopback, with the `pattern`
content: every pixel written equals what was sent; with each fault injected,
every lost packet shows in packets_received and the bitmask, and nothing
else is wrong."""
import csv

import numpy as np
import pytest

from conftest import LOSS, OK, Receiver, jf_header, mask_bits, morgul, pattern, read_capture, read_run, run, \
    write_capture


def check_run(prefix, nmod, ifaces, frames, first=1, dropped=(), asked=None):
    """Compares the files with what the simulator sent minus `dropped`
    ((module, frame_number, module_packet) triples): image i is frame
    first + i from the first frame of which anything came to the last,
    frames of which nothing came keep their place as missing images."""
    r = read_run(prefix)
    lost = {}
    for m, fn, q in dropped:
        lost.setdefault((m, fn), set()).add(q)
    # frames in which every packet of every module was dropped: images only between frames that came
    came = [fn for fn in range(first, first + frames) if any(len(lost.get((m, fn), ())) < 128 for m in range(nmod))]
    expect_fn = list(range(came[0], came[-1] + 1))
    assert r["frame_number"][:, 0].tolist() == expect_fn
    for i, fn in enumerate(expect_fn):
        for m in range(nmod):
            assert r["frame_number"][i, m] == fn
            missing = lost.get((m, fn), set())
            bits = mask_bits(r["packet_mask"][i, m])
            assert r["packets_received"][i, m] == 128 - len(missing), (fn, m)
            assert set(np.flatnonzero(~bits)) == missing, (fn, m)
            want = pattern(m, fn).copy()
            for q in missing:
                want[4 * q:4 * q + 4] = 0xFFFF
            np.testing.assert_array_equal(r["data"][i, m], want, err_msg=f"frame {fn} module {m}")
    assert r["run"]["frames_written"] == len(expect_fn)
    assert r["run"]["frames_missing"] == len(expect_fn) - len(came)
    tail = (asked - len(expect_fn)) * nmod * 128 if asked else 0
    assert r["run"]["packets_lost"] == sum(len(v) for (m, fn), v in lost.items() if fn in expect_fn) + tail
    assert r["run"]["kernel_drops"] == 0
    assert r["run"]["packets_stray"] == 0
    return r


def dropped_from_log(path, ifaces):
    out = []
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["kind"] == "drop":
                q = int(row["interface"]) * (128 // ifaces) + int(row["packet"])
                out.append((int(row["module"]), int(row["frame_number"]), q))
    return out


def faults_of(path, kind):
    with open(path) as f:
        return sum(1 for row in csv.DictReader(f) if row["kind"] == kind)


@pytest.mark.parametrize("nmod,ifaces", [(1, 1), (2, 2)])
def test_pattern_exact(tmp, port, nmod, ifaces):
    prefix = tmp / "run"
    rx = Receiver("--modules", nmod, "--interfaces", ifaces, "--port", port, "-o", prefix, "-n", 60,
                  "--idle-timeout", 5, "--frames-per-file", 25).start()
    morgul("simulate", "--modules", nmod, "--interfaces", ifaces, "--port", port, "-n", 60, "--rate", 300)
    assert rx.wait() == 0, rx.output
    check_run(prefix, nmod, ifaces, 60)
    # rolled over into three data files, joined by the master
    assert sorted(p.name for p in tmp.glob("run_data_*.h5")) == [f"run_data_00000{i}.h5" for i in (1, 2, 3)]
    # h5dump (the HDF5 tools with the standard plugin) reads the same pixels through the master,
    # from another directory: the data files are found beside the master
    out = run("h5dump", "-d", "/data", "-s", "30,0,5,10", "-c", "1,1,1,4", "-w", "0", "-y",
              f"{prefix}_master.h5", cwd="/").stdout
    values = [int(v) for v in out[out.index("DATA {") + 6:out.index("}", out.index("DATA {"))].replace(",", " ").split()]
    assert values == pattern(0, 31)[5, 10:14].tolist()


@pytest.mark.parametrize("nmod,ifaces", [(1, 1), (2, 2)])
def test_drop(tmp, port, nmod, ifaces):
    prefix, log = tmp / "run", tmp / "faults.csv"
    rx = Receiver("--modules", nmod, "--interfaces", ifaces, "--port", port, "-o", prefix, "-n", 40,
                  "--idle-timeout", 2).start()
    morgul("simulate", "--modules", nmod, "--interfaces", ifaces, "--port", port, "-n", 40, "--rate", 300,
           "--drop", 0.02, "--seed", 7, "--fault-log", log)
    assert rx.wait() == LOSS, rx.output
    dropped = dropped_from_log(log, ifaces)
    assert len(dropped) > 20
    r = check_run(prefix, nmod, ifaces, 40, dropped=dropped)
    assert r["run"]["frames_partial"] > 0
    assert "DATA LOST" in rx.output and "never arrived" in rx.output


def test_drop_whole_frames(tmp, port):
    """Frames of which no packet arrives keep their place as missing images
    (a long gap as well as single ones): data[i] is frame first + i."""
    prefix, log = tmp / "run", tmp / "faults.csv"
    rx = Receiver("--port", port, "-o", prefix, "-n", 30, "--idle-timeout", 2).start()
    # frames 5-8 lost whole (a gap of 4), then 5 % of the packets of the others
    cap, cut = tmp / "c.pcap", tmp / "cut.pcap"
    morgul("simulate", "--port", port, "-n", 30, "--rate", 300, "--drop", 0.05, "--seed", 3, "--fault-log", log,
           "--pcap", cap)
    write_capture(cut, [r for r in read_capture(cap) if not 5 <= jf_header(r[2])[0] <= 8])
    morgul("replay", cut, "--send", f"127.0.0.1:{port}", "--realtime")
    assert rx.wait() == LOSS, rx.output
    dropped = dropped_from_log(log, 1) + [(0, fn, q) for fn in range(5, 9) for q in range(128)]
    r = check_run(prefix, 1, 1, 30, dropped=sorted(set(dropped)))
    assert r["run"]["frames_missing"] == 4
    assert r["frame_number"][4:8, 0].tolist() == [5, 6, 7, 8] and (r["data"][4:8] == 0xFFFF).all()
    assert (r["packets_received"][4:8] == 0).all()


@pytest.mark.parametrize("kind", ["duplicate", "reorder", "delay"])
def test_faults_without_loss(tmp, port, kind):
    """Duplicated, reordered and delayed packets (delay 2 frames < window 16)
    lose nothing and are counted."""
    prefix, log = tmp / "run", tmp / "faults.csv"
    rx = Receiver("--modules", 2, "--interfaces", 2, "--port", port, "-o", prefix, "-n", 40,
                  "--idle-timeout", 2).start()
    morgul("simulate", "--modules", 2, "--interfaces", 2, "--port", port, "-n", 40, "--rate", 300, f"--{kind}",
           0.02, "--seed", 11, "--fault-log", log)
    assert rx.wait() == OK, rx.output
    n = faults_of(log, kind)
    assert n > 20
    r = check_run(prefix, 2, 2, 40)
    assert r["run"]["frames_complete"] == 40
    if kind == "duplicate":
        assert r["run"]["packets_duplicated"] == n
    else:
        assert r["run"]["packets_out_of_order"] >= n * (1 if kind == "reorder" else 0.9)


def test_delay_beyond_window(tmp, port):
    """Packets delayed past the window are late: their frames are partial,
    the packets counted late, nothing else wrong."""
    prefix, log = tmp / "run", tmp / "faults.csv"
    rx = Receiver("--port", port, "-o", prefix, "-n", 40, "--idle-timeout", 2, "--window", 2).start()
    morgul("simulate", "--port", port, "-n", 40, "--rate", 300, "--delay", 0.01, "--delay-frames", 4, "--seed", 5,
           "--fault-log", log)
    assert rx.wait() == LOSS, rx.output
    delayed = []
    import csv as _csv
    with open(log) as f:
        for row in _csv.DictReader(f):
            # a packet held back 4 frames with a window of 2 misses its frame,
            # except in the last 2 frames: the held packets follow frame 40 at once
            if row["kind"] == "delay" and int(row["frame_number"]) <= 40 - 2:
                delayed.append((0, int(row["frame_number"]), int(row["packet"])))
    r = check_run(prefix, 1, 1, 40, dropped=delayed)
    assert r["run"]["packets_late"] == len(delayed)


def test_fault_injection_is_repeatable(tmp):
    a, b = tmp / "a.csv", tmp / "b.csv"
    for log in (a, b):
        morgul("simulate", "-n", 10, "--drop", 0.05, "--reorder", 0.05, "--seed", 9, "--fault-log", log, "--pcap",
               tmp / "x.pcap", "--overwrite")
    assert a.read_text() == b.read_text()


def test_sigint_leaves_valid_files(tmp, port):
    """Ctrl-C (SIGINT) and SIGTERM end an open-ended run with every frame
    received written, valid files and the summary."""
    import signal
    import time
    for sig in (signal.SIGINT, signal.SIGTERM):
        prefix = tmp / f"run{int(sig)}"
        rx = Receiver("--port", port, "-o", prefix, "--progress").start()
        morgul("simulate", "--port", port, "-n", 30, "--rate", 200)
        time.sleep(1.2)  # let a progress line pass and the frames close by timeout
        rx.p.send_signal(sig)
        assert rx.wait() == 0, rx.output
        assert "stopped by signal" in rx.output
        assert "] frames" in rx.output  # a progress line
        r = check_run(prefix, 1, 1, 30)
        assert r["run"]["frames_complete"] == 30


def burst(tmp, port, frames, *receiver_args):
    """2 modules sending `frames` frames as fast as one core sends, to a
    receiver with `receiver_args`; every packet sent is either received (and
    in the bitmasks) or counted lost.  Returns the run and the receiver."""
    prefix = tmp / "run"
    rx = Receiver("--modules", 2, "--port", port, "-o", prefix, "-n", frames, "--idle-timeout", 2,
                  *receiver_args).start()
    morgul("simulate", "--modules", 2, "--port", port, "-n", frames)
    status = rx.wait()
    r = read_run(prefix)
    run_ = r["run"]
    assert status == (LOSS if run_["packets_lost"] else OK), rx.output
    assert run_["packets_received"] + run_["packets_lost"] == frames * 2 * 128, run_
    received = sum(int(mask_bits(m).sum()) for f in r["packet_mask"] for m in f)
    assert received == run_["packets_received"]
    # loss is loss, not a reason to see a new acquisition or stray packets
    assert run_["acquisitions"] == 1 and run_["packets_stray"] == 0, rx.output
    return run_, rx


def test_kernel_drops_are_reported(tmp, port):
    """With a receive buffer far too small for a burst, the kernel drops
    datagrams: the socket's drops are reported as kernel drops, and every
    packet lost, wherever the kernel dropped it, shows in the counts and
    bitmasks."""
    run_, rx = burst(tmp, port, 200, "--rcvbuf", 1)
    if run_["packets_lost"] == 0:
        pytest.skip("the receiver kept up with the burst: nothing to report on this machine")
    # the socket's own drops are a part of the loss (the loopback device may drop more before it)
    assert 0 < run_["kernel_drops"] <= run_["packets_lost"]
    assert f"kernel drops {run_['kernel_drops']}" in rx.output
    assert f"kernel drops {run_['kernel_drops']}: the receiving threads fell behind" in rx.output


def test_buffer_overruns_are_reported(tmp, port):
    """With 40 frame buffers (17 of them for compression and writing) a burst
    from 2 modules outruns compressing and writing: the packets that found no
    free buffer are counted as buffer overruns, every packet lost shows in the
    counts and bitmasks, and the summary says what to do."""
    run_, rx = burst(tmp, port, 300, "--buffer-frames", 40, "--window", 2)
    if run_["packets_overrun"] == 0:
        pytest.skip("compressing and writing kept up with the burst: nothing to report on this machine")
    assert run_["packets_overrun"] <= run_["packets_lost"]
    assert f"buffer overruns {run_['packets_overrun']}" in rx.output
    assert "--buffer-frames" in rx.output


def test_silent_module(tmp, port):
    """A module that sends nothing: every frame closes by the window and the
    link timeout, is written partial with that module marked missing, and
    the run ends."""
    prefix = tmp / "run"
    rx = Receiver("--modules", 2, "--port", port, "-o", prefix, "-n", 20, "--idle-timeout", 2).start()
    morgul("simulate", "--modules", 1, "--port", port, "-n", 20, "--rate", 200)  # only module 0's port
    assert rx.wait() == LOSS, rx.output
    r = read_run(prefix)
    assert len(r["index"]) == 20
    assert (r["packets_received"][:, 0] == 128).all() and (r["packets_received"][:, 1] == 0).all()
    assert (r["data"][:, 1] == 0xFFFF).all()
    assert r["run"]["frames_partial"] == 20 and r["run"]["packets_lost"] == 20 * 128
