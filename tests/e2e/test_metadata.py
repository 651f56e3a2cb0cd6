"""What the files say about the run is true: times from the data (the
capture's record times, carried by correct), exposure and frame time inline
as offline, NXmx's required fields, the raw run's detector and counters in
the corrected files, units and descriptions, the modules' ids from their
headers (a module whose id is not its name's is reported), the detector
description, the command line and the software; a replay and a later
correct of the same data pick the same constants from a store."""
import struct
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from conftest import morgul

NAMES = "M420,M418"
P = (512, 1024)
T0 = "2026-03-02T10:00:00Z"


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def iso(t, digits=6):
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}"[:digits] + "Z"


def record_times(pcap):
    """Every record's time stamp (Unix s) of a classic pcap file, in order."""
    b = pcap.read_bytes()
    nano = b[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    at, out = 24, []
    while at + 16 <= len(b):
        sec, frac, incl, _ = struct.unpack_from("<IIII", b, at)
        out.append(sec + frac * (1e-9 if nano else 1e-6))
        at += 16 + incl
    return out


def calibration(d, name, modules):
    gain = np.stack([np.full(P, 41.0), np.full(P, -1.44), np.full(P, -0.115)])
    gain.astype("<f8").tofile(d / "g.bin")
    ped = np.stack([np.full(P, 3000.0), np.full(P, 14000.0), np.full(P, 15000.0)]).astype(np.float32)
    with h5py.File(d / "ped.h5", "w") as f:
        f["gains"] = ped
    cal = d / name
    morgul("gainmap", "-c", cal, "--module-names", modules, *sum((["--gainmap", f"{m}={d / 'g.bin'}"]
                                                                  for m in modules.split(",")), []))
    for row, m in enumerate(modules.split(",")):
        morgul("calib", "import", "-c", cal, "--module", m, "--row", row, "--pedestal", d / "ped.h5")
    return cal


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("meta")
    morgul("simulate", "-n", 20, "--rate", 100, "--exposure-us", 25, "--module-names", NAMES,
           "--capture-time", T0, "--pcap", d / "c.pcap")
    morgul("replay", d / "c.pcap", "--module-names", NAMES, "-o", d / "raw", "-q")
    cal = calibration(d, "cal.h5", NAMES)
    morgul("replay", d / "c.pcap", "--module-names", NAMES, "-o", d / "inline", "-q", "--calibration", cal,
           "--energy", 12.4, "--sample", "lysozyme 3", "--source", "Swiss Light Source")
    morgul("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "off")
    return d, cal


def test_raw_files_say_what_happened(run):
    d, _ = run
    times = record_times(d / "c.pcap")
    with h5py.File(d / "raw_master.h5", "r") as f:
        meta = f["metadata"]
        assert text(meta["start_time"][()]) == iso(times[0])
        # the last frame's first packet: 20 frames of 2 modules x 128 packets, in frame order
        assert text(meta["end_time"][()]) == iso(times[19 * 256])
        assert f.attrs["start_time"] == pytest.approx(times[0], abs=1e-6)
        assert f.attrs["end_time"] == pytest.approx(times[19 * 256], abs=1e-6)
        cmd = text(meta["command_line"][()])
        assert cmd.startswith("morgul replay ") and "--module-names M420,M418" in cmd and str(d / "raw") in cmd
        assert text(meta["software"][()]).startswith("morgul ")
        assert list(f["detector/module_id"][()]) == [420, 418]
        assert (f["frames/module_id"][()] == [420, 418]).all()
        desc = text(f["detector/description"][()])
        assert "M420" in desc and "M418" in desc and "50001" in desc and "50002" in desc
        assert text(f["frames/timestamp"].attrs["units"]) == "1e-7 s"
        assert text(f["frames/exposure_length"].attrs["units"]) == "1e-7 s"
        for k in f["frames"]:
            assert text(f["frames"][k].attrs["description"]), k
        assert "0xFFFF" in text(f["data"].attrs["description"])
    with h5py.File(d / "raw_data_000001.h5", "r") as f:
        assert "units" in f["frames/timestamp"].attrs and "file_created" in f.attrs


def nx(path):
    with h5py.File(path, "r") as f:
        e = f["entry"]
        det = e["instrument/detector"]
        out = {k: text(e[k][()]) for k in ("start_time", "end_time", "end_time_estimated")}
        out.update(sample=text(e["sample/name"][()]), source=text(e["source/name"][()]),
                   source_class=text(e["source"].attrs["NX_class"]), count_time=det["count_time"][()],
                   frame_time=det["frame_time"][()])
        jd = det["jungfrau/detector"]
        out.update(det_name=text(jd.attrs["name"]), ports=jd["module_ports"][()].tolist(),
                   interfaces=jd["module_interfaces"][()].tolist(), ids=jd["module_id"][()].tolist(),
                   run={k: f["run"][k][()] for k in f["run"]})
    return out


def test_nxmx_inline_and_offline_agree_with_the_data(run):
    d, _ = run
    times = record_times(d / "c.pcap")
    inline, off = nx(d / "inline_master.h5"), nx(d / "off_master.h5")
    for x in (inline, off):
        assert x["start_time"] == iso(times[0], 3)
        assert x["end_time"] == x["end_time_estimated"] == iso(times[19 * 256], 3)
        assert x["count_time"] == pytest.approx(25e-6) and x["frame_time"] == pytest.approx(0.01)
        assert x["source_class"] == "NXsource"
        assert x["ports"] == [[50001, 0], [50002, 0]] and x["interfaces"] == [1, 1] and x["ids"] == [420, 418]
    assert inline["sample"] == "lysozyme 3" and inline["source"] == "Swiss Light Source"
    assert off["sample"] == "off" and off["source"] == "unknown"
    # correct carries the raw run's counters beside its own
    with h5py.File(d / "raw_master.h5", "r") as f:
        raw = {k: f["run"][k][()] for k in f["run"]}
    assert off["run"]["frames_written"] == 20
    for k, v in raw.items():
        assert off["run"][f"raw_{k}"] == v, k


def test_replay_and_correct_pick_the_same_constants(run, tmp_path):
    d, cal = run
    s = tmp_path / "store"
    for taken in ("2026-03-02T09:00:00Z", "2026-03-02T09:59:00Z", "2026-03-02T10:30:00Z"):
        morgul("calib", "add", s, cal, "--taken", taken, "--exposure", 25e-6)
    p = morgul("replay", d / "c.pcap", "--module-names", NAMES, "-o", tmp_path / "r", "-q", "--calibration-store",
               s, "--energy", 12.4)
    q = morgul("correct", d / "raw_master.h5", "--calibration-store", s, "--energy", 12.4, "-o", tmp_path / "c")
    for out in (p.stdout, q.stdout):
        assert "20260302T095900Z" in out, out
    with h5py.File(tmp_path / "r_master.h5", "r") as a, h5py.File(tmp_path / "c_master.h5", "r") as b:
        ca = text(a["entry/instrument/detector/jungfrau/calibration_file"][()])
        cb = text(b["entry/instrument/detector/jungfrau/calibration_file"][()])
        assert ca == cb and ca.endswith("jungfrau_20260302T095900Z_25us.h5")


def test_module_id_not_the_name_reported(run, tmp_path):
    """The capture's module M420 replayed as M421 (with a calibration for
    M421): the headers say 420, and every command that uses the constants
    says so; the ids are recorded as they came."""
    d, _ = run
    morgul("simulate", "-n", 3, "--module-names", "M420", "--pcap", tmp_path / "c.pcap")
    cal = calibration(tmp_path, "cal.h5", "M421")
    p = morgul("replay", tmp_path / "c.pcap", "--module-names", "M421", "-o", tmp_path / "i", "--calibration", cal,
               "--energy", 12.4)
    assert "module M421's packet headers say module id 420" in p.stdout
    morgul("replay", tmp_path / "c.pcap", "--module-names", "M421", "-o", tmp_path / "raw", "-q")
    p = morgul("correct", tmp_path / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", tmp_path / "x")
    assert "module M421's packet headers say module id 420" in p.stdout
    with h5py.File(tmp_path / "raw_master.h5", "r") as f:
        assert list(f["detector/module_id"][()]) == [420]
    # names that fit say nothing
    assert "packet headers say" not in morgul("correct", d / "raw_master.h5", "-c", d / "cal.h5", "--energy", 12.4,
                                              "-o", tmp_path / "y").stdout
