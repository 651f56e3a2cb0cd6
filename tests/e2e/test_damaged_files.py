"""Damaged files never crash morgul. The HDF5 library trusts a file's
structure: an overwritten byte in a layout message or a B-tree can make it
read past its buffers and die. morgul walks every file it is about to read
in a child process first (mg_h5_probe) and names a damaged one in a clear
error: calibration files (show, import, correct, replay, the store) and raw
runs (correct, pedestal). A store with a damaged file still serves the
others."""
import os
import pathlib
import random
import re
import shutil

import h5py
import numpy as np

from conftest import morgul

P = (512, 1024)
GAIN = np.stack([np.full(P, 41.0), np.full(P, -1.44), np.full(P, -0.115)])
PED = np.stack([np.full(P, 3000.0), np.full(P, 14000.0), np.full(P, 15000.0)])
# a chunked layout message (version 3, class chunked, rank 3 + 1) with chunks of (1, 512, 1024)
LAYOUT = re.compile(rb"\x03\x02\x04.{8}\x01\x00\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00", re.S)


# HDF5's own leaks on damaged files are not morgul's (see the file); the sanitizer build checks the rest
SUPP = pathlib.Path(__file__).with_name("hdf5-damaged.supp")
ENV = dict(os.environ, LSAN_OPTIONS=f"suppressions={SUPP}:" + os.environ.get("LSAN_OPTIONS", ""))


def damaged(*args):
    """morgul on a damaged file: any exit status, its output."""
    return morgul(*args, check=False, env=ENV)


def calibration(d, name="cal.h5"):
    cal = d / name
    GAIN.astype("<f8").tofile(d / "g.bin")
    morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={d / 'g.bin'}")
    with h5py.File(d / "ped.h5", "w") as f:
        f["gains"] = PED.astype(np.float32)
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", d / "ped.h5")
    return cal


def chunk_dims_overwritten(src, dst):
    """One byte changed: the first chunk dimension of each (1, 512, 1024)-chunked dataset becomes 114."""
    b = bytearray(src.read_bytes())
    found = [m.start() for m in LAYOUT.finditer(b)]
    assert found, "no chunked layout message found"
    for at in found:
        b[at + 11] = 114
    dst.write_bytes(b)
    return dst


def refused(p, name):
    assert p.returncode == 1, f"exit {p.returncode}:\n{p.stdout}"
    assert name in p.stdout and "is damaged" in p.stdout and "restore it from a copy" in p.stdout, p.stdout


def test_damaged_calibration_named_not_crashing(tmp):
    cal = calibration(tmp)
    bad = chunk_dims_overwritten(cal, tmp / "bad.h5")
    refused(damaged("calib", "show", bad), "bad.h5")
    refused(damaged("calib", "import", "-c", bad, "--module", "M420", "--pedestal", tmp / "ped.h5"),
            "bad.h5")
    morgul("simulate", "-n", 3, "--module-names", "M420", "--pcap", tmp / "c.pcap")
    p = damaged("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "r", "--calibration", bad,
                "--energy", 12.4)
    refused(p, "bad.h5")
    assert not list(tmp.glob("r_*"))  # nothing written
    morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "raw", "-q")
    p = damaged("correct", tmp / "raw_master.h5", "-c", bad, "--energy", 12.4, "-o", tmp / "x")
    refused(p, "bad.h5")
    assert not list(tmp.glob("x_*"))
    # the undamaged file still works, and the store serves it beside the damaged one
    morgul("calib", "show", cal)
    s = tmp / "store"
    morgul("calib", "add", s, cal, "--taken", "2026-11-20T08:00:00Z", "--exposure", 1e-5)
    shutil.copy(bad, s / "jungfrau_20261120T060000Z_10us.h5")
    listing = damaged("calib", "list", s).stdout
    assert "080000Z" in listing and "060000Z" in listing and "UNUSABLE" in listing
    p = damaged("calib", "find", s, "--time", "2026-11-20T09:00:00Z", "--module-names", "M420", "--exposure", 1e-5)
    assert p.returncode == 0, p.stdout
    assert p.stdout.strip().endswith("jungfrau_20261120T080000Z_10us.h5")


def test_damaged_raw_files_never_crash(tmp):
    """Deterministic random damage to the metadata of a raw run's master and
    data file: correct and pedestal end with an error or read what is
    readable, never with a signal; a truncated data file is named."""
    cal = calibration(tmp)
    morgul("simulate", "-n", 4, "--module-names", "M420", "--pcap", tmp / "c.pcap")
    morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "raw", "-q")
    master, data = (tmp / "raw_master.h5").read_bytes(), (tmp / "raw_data_000001.h5").read_bytes()
    rnd = random.Random(16)
    for case in range(24):
        d = tmp / f"case{case}"
        d.mkdir()
        m, x = bytearray(master), bytearray(data)
        target = m if case % 2 else x
        for _ in range(rnd.randint(1, 12)):
            target[rnd.randrange(0, 4096)] = rnd.randrange(256)
        (d / "raw_master.h5").write_bytes(m)
        (d / "raw_data_000001.h5").write_bytes(x)
        for args in (("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "x"),
                     ("pedestal", "-c", d / "p.h5", "--g0", d / "raw_master.h5", "--module-names", "M420")):
            p = damaged(*args)
            assert 0 <= p.returncode <= 4, f"case {case} {args[0]}: exit {p.returncode}\n{p.stdout}"
            if p.returncode:
                assert "raw_" in p.stdout, p.stdout
    d = tmp / "trunc"
    d.mkdir()
    (d / "raw_master.h5").write_bytes(master)
    (d / "raw_data_000001.h5").write_bytes(data[: len(data) // 2])
    p = damaged("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "x")
    assert p.returncode == 1 and "raw_data_000001.h5" in p.stdout, p.stdout
