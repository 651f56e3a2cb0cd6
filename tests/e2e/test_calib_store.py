"""The calibration store (`morgul calib add | list | find`, and
`--calibration-store` in replay and correct) picks the newest constants
taken before the data with the same exposure and refuses what does not
read; `calib merge` joins partial files into what one run gives; `calib
export` writes whole-detector arrays; `calib show` flags a module that
stands out and draws valid PNG pictures; a corrupt, truncated or mismatched
calibration is refused before any data is written."""
import struct
import zlib
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from conftest import SHARED, morgul

MOD5 = SHARED / "psi-mod5"
pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")
GAINMAP = MOD5 / "gainmap_mod5_derived.bin"
PLANES = ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3))


def unix(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def full_cal(d, name="cal.h5", module="M420"):
    """Gain map and PSI pedestals of one module: a usable calibration without dark runs."""
    cal = d / name
    morgul("gainmap", "-c", cal, "--module-names", module, "--gainmap", f"{module}={GAINMAP}")
    morgul("calib", "import", "-c", cal, "--module", module, "--pedestal", PLANES)
    return cal


@pytest.fixture
def store(tmp_path):
    cal = full_cal(tmp_path)
    s = tmp_path / "store"
    for taken, exposure in (("2026-11-20T08:00:00Z", 1e-5), ("2026-11-20T12:00:00Z", 1e-5),
                            ("2026-11-20T10:00:00Z", 2e-5)):
        out = morgul("calib", "add", s, cal, "--taken", taken, "--exposure", exposure).stdout
        assert "->" in out
    return tmp_path, s, cal


def find(s, when, exposure=None, *more, check=True):
    args = ["calib", "find", s, "--time", when, "--module-names", "M420", *more]
    if exposure:
        args += ["--exposure", exposure]
    return morgul(*args, check=check)


def test_store_picks_by_time_and_exposure(store):
    d, s, cal = store
    p = find(s, "2026-11-20T11:00:00Z", 1e-5)
    assert p.stdout.splitlines()[-1].endswith("jungfrau_20261120T080000Z_10us.h5")
    assert "3.0 h older than the run" in p.stdout  # default limit one hour
    p = find(s, "2026-11-20T12:30:00Z", 1e-5)
    assert p.stdout.strip().endswith("jungfrau_20261120T120000Z_10us.h5") and "warning" not in p.stdout
    assert find(s, "2026-11-20T11:00:00Z", 2e-5).stdout.strip().endswith("_20261120T100000Z_20us.h5")
    p = find(s, "2026-11-20T12:30:00Z", 1e-5, "--max-age", 60)
    assert "older than the run" in p.stdout
    p = find(s, "2026-11-20T07:00:00Z", 1e-5, check=False)
    assert p.returncode == 1 and "no calibration" in p.stdout
    p = morgul("calib", "find", s, "--time", "2026-11-20T12:30:00Z", "--module-names", "M999", check=False)
    assert p.returncode == 1 and "M999" in p.stdout
    listing = morgul("calib", "list", s).stdout
    assert listing.count("jungfrau_2026") == 3
    assert listing.index("080000Z") < listing.index("100000Z") < listing.index("120000Z")
    log = (s / "store.log").read_text().splitlines()
    assert [line.split()[1] for line in log] == ["add"] * 3 + ["pick"] * 4
    with h5py.File(s / "jungfrau_20261120T120000Z_10us.h5", "r") as f:
        assert f.attrs["time_taken"] == unix("2026-11-20T12:00:00Z")
        assert f["M420"].attrs["time_taken"] == unix("2026-11-20T12:00:00Z")
        assert f.attrs["exposure_time"] == pytest.approx(1e-5)
    # the store's copy is the calibration, unchanged in content
    with h5py.File(s / "jungfrau_20261120T120000Z_10us.h5", "r") as a, h5py.File(cal, "r") as b:
        assert np.array_equal(a["M420/pedestal"][()], b["M420/pedestal"][()])


def test_store_refuses_what_does_not_read(store):
    d, s, cal = store
    # no time taken or exposure: refused, nothing added
    p = morgul("calib", "add", s, cal, check=False)
    assert p.returncode == 1 and "--taken" in p.stdout
    trunc = d / "trunc.h5"
    trunc.write_bytes(cal.read_bytes()[:5000])
    p = morgul("calib", "add", s, trunc, "--taken", "now", "--exposure", 1e-5, check=False)
    assert p.returncode == 1 and "trunc.h5" in p.stdout
    assert len(list(s.glob("*.h5"))) == 3
    # a broken file that would be the pick is never passed over for older constants
    (s / "jungfrau_20261120T130000Z_10us.h5").write_bytes(b"garbage")
    p = find(s, "2026-11-20T14:00:00Z", 1e-5, check=False)
    assert p.returncode == 1 and "20261120T130000Z" in p.stdout and "does not read" in p.stdout
    assert find(s, "2026-11-20T12:30:00Z", 1e-5).stdout.strip().endswith("_20261120T120000Z_10us.h5")
    assert "UNUSABLE" in morgul("calib", "list", s).stdout


def test_replay_and_correct_pick_from_the_store(store, tmp_path):
    d, s, cal = store
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(3))
    morgul("simulate", "-n", 3, "--content", "frames", "--frames-file", frames, "--pcap", d / "c.pcap",
           "--module-names", "M420", "--capture-time", "2026-11-20T12:30:00Z", "--exposure-us", 10)
    p = morgul("replay", d / "c.pcap", "--module-names", "M420", "--calibration-store", s, "--energy", 12.4,
               "-o", d / "inline")
    assert "jungfrau_20261120T120000Z_10us.h5" in p.stdout
    # the same frames corrected with the file named directly
    morgul("replay", d / "c.pcap", "--module-names", "M420", "-c", cal, "--energy", 12.4, "-o", d / "direct")
    with h5py.File(d / "inline_master.h5", "r") as a, h5py.File(d / "direct_master.h5", "r") as b:
        assert np.array_equal(a["entry/data/data"][()], b["entry/data/data"][()])
    # an exposure no stored calibration has: refused before anything is written
    morgul("simulate", "-n", 1, "--content", "frames", "--frames-file", frames, "--pcap", d / "e.pcap",
           "--module-names", "M420", "--capture-time", "2026-11-20T12:30:00Z", "--exposure-us", 50)
    p = morgul("replay", d / "e.pcap", "--module-names", "M420", "--calibration-store", s, "--energy", 12.4,
               "-o", d / "none", check=False)
    assert p.returncode == 1 and "exposure 5e-05 s" in p.stdout and not list(d.glob("none*"))
    p = morgul("replay", d / "c.pcap", "--calibration-store", s, "-c", cal, "--energy", 12.4, "-o", d / "x",
               check=False)
    assert p.returncode == 2 and "not both" in p.stdout
    # correct: an original morgul file taken at 11:00 picks the 08:00 constants (and warns they are old)
    raw = np.stack([np.fromfile(MOD5 / f"mod5_raw{k}.bin", np.uint16).reshape(512, 1024) for k in range(3)])
    with h5py.File(d / "orig.h5", "w") as f:
        f["data"] = raw
        f["exptime"] = 1e-5
        f["gainmode"] = "dynamic"
        f["timestamp"] = unix("2026-11-20T11:00:00Z")
        f["row"] = 0
        f["column"] = 0
    p = morgul("correct", d / "orig.h5", "--module-names", "M420", "--calibration-store", s, "--energy", 12.4,
               "-o", d / "corr")
    assert "jungfrau_20261120T080000Z_10us.h5" in p.stdout and "older than the run" in p.stdout
    with h5py.File(d / "corr_master.h5", "r") as a, h5py.File(d / "direct_master.h5", "r") as b:
        assert np.array_equal(a["entry/data/data"][()], b["entry/data/data"][()])
    assert "pick jungfrau_20261120T080000Z_10us.h5" in (s / "store.log").read_text()


def test_mismatched_calibration_refused(tmp_path):
    """Wrong module, wrong shape, a missing gain map, a truncated file: each
    named, and no output written."""
    d = tmp_path
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(2))
    morgul("simulate", "-n", 2, "--content", "frames", "--frames-file", frames, "--pcap", d / "c.pcap",
           "--module-names", "M420")
    morgul("replay", d / "c.pcap", "--module-names", "M420", "-o", d / "raw", "-q")
    good = full_cal(d, "good.h5")
    cases = {}
    cases["wrong module"] = (full_cal(d, "other.h5", module="M418"), "M420")
    shape = d / "shape.h5"
    shape.write_bytes(good.read_bytes())
    with h5py.File(shape, "a") as f:
        del f["M420/pedestal"]
        f["M420/pedestal"] = np.zeros((2, 512, 1024), np.float32)
    cases["wrong shape"] = (shape, "shape")
    nogain = d / "nogain.h5"
    nogain.write_bytes(good.read_bytes())
    with h5py.File(nogain, "a") as f:
        del f["M420/gain"]
    cases["missing gain"] = (nogain, "gain")
    trunc = d / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["truncated"] = (trunc, "trunc.h5")
    for what, (cal, words) in cases.items():
        for cmd in (["correct", d / "raw_master.h5"], ["replay", d / "c.pcap", "--module-names", "M420"]):
            p = morgul(*cmd, "-c", cal, "--energy", 12.4, "-o", d / "out", check=False)
            assert p.returncode == 1, (what, cmd[0], p.stdout)
            assert words in p.stdout, (what, cmd[0], p.stdout)
            assert not list(d.glob("out*")), (what, cmd[0])


def dark_pcaps(d, frames=20):
    for g in range(3):
        morgul("simulate", "--content", "dark", "--gain", g, "-n", frames, "--pcap", d / f"g{g}.pcap",
               "--module-names", "M420", "--seed", 40 + g, "--bad-pixels", "noisy=20,dead=20,stuck=20")


def test_merge_equals_one_run(tmp_path):
    d = tmp_path
    dark_pcaps(d)
    g = [d / f"g{k}.pcap" for k in range(3)]
    morgul("gainmap", "-c", d / "one.h5", "--module-names", "M420", "--gainmap", f"M420={GAINMAP}")
    morgul("pedestal", "-c", d / "one.h5", "--g0", g[0], "--g1", g[1], "--g2", g[2], "--module-names", "M420", "-q")
    morgul("gainmap", "-c", d / "gm.h5", "--module-names", "M420", "--gainmap", f"M420={GAINMAP}")
    morgul("pedestal", "-c", d / "p0.h5", "--g0", g[0], "--module-names", "M420", "-q")
    morgul("pedestal", "-c", d / "p12.h5", "--g1", g[1], "--g2", g[2], "--module-names", "M420", "-q")
    out = morgul("calib", "merge", "-o", d / "merged.h5", d / "gm.h5", d / "p0.h5", d / "p12.h5").stdout
    assert "gain-map" in out and "G1 G2" in out
    with h5py.File(d / "one.h5", "r") as a, h5py.File(d / "merged.h5", "r") as b:
        for k in ("pedestal", "pedestal_rms", "frames_used", "wrong_gain", "mask", "gain"):
            assert np.array_equal(a[f"M420/{k}"][()], b[f"M420/{k}"][()], equal_nan=True), k
        assert list(b["M420"].attrs["dark_frames"]) == [20, 20, 20]
    # constants of another exposure do not join
    with h5py.File(d / "p12.h5", "a") as f:
        f.attrs["exposure_time"] = 5e-5
    p = morgul("calib", "merge", "-o", d / "bad.h5", d / "p0.h5", d / "p12.h5", check=False)
    assert p.returncode == 1 and "different exposures" in p.stdout and not (d / "bad.h5").exists()
    p = morgul("calib", "merge", "-o", d / "merged.h5", d / "gm.h5", check=False)
    assert p.returncode == 1 and "--overwrite" in p.stdout


def test_export_arrays(tmp_path):
    d = tmp_path
    a, b = full_cal(d, "a.h5", "M420"), full_cal(d, "b.h5", "M418")
    morgul("calib", "merge", "-o", d / "det.h5", a, b, "-q")
    morgul("calib", "export", d / "det.h5", "-o", d / "x.h5", "--module-names", "M418,M420", "--modules", 2)
    with h5py.File(d / "x.h5", "r") as x, h5py.File(d / "det.h5", "r") as c:
        assert [n.decode() for n in x["module_name"][()]] == ["M418", "M420"]
        for k in ("pixel_gain", "pixel_offset", "pedestals", "pixel_rms", "pixel_status"):
            assert x[k].shape == (3, 2, 512, 1024), k
        assert x["pixel_gain"].dtype == np.float32 and x["pixel_offset"].dtype == np.float32
        assert np.array_equal(x["pixel_gain"][:, 1], c["M420/gain"][()].astype(np.float32))
        assert np.array_equal(x["pedestals"][:, 0], c["M418/pedestal"][()])
        assert not x["pixel_offset"][()].any()
    p = morgul("calib", "export", d / "det.h5", "-o", d / "y.h5", "--module-names", "M777", check=False)
    assert p.returncode == 1 and "M777" in p.stdout and not (d / "y.h5").exists()


def read_png(path):
    """Width, height and RGB rows of a PNG, decoded by hand (signature, CRCs, IDAT)."""
    b = path.read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        body = b[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour == 2
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    assert len(raw) == (w * 3 + 1) * h
    return w, h, np.frombuffer(raw, np.uint8).reshape(h, w * 3 + 1)[:, 1:].reshape(h, w, 3)


def test_show_flags_a_noisy_module_and_draws(tmp_path):
    d = tmp_path
    dark_pcaps(d, frames=10)
    for m in ("M420", "M418", "M417"):
        morgul("pedestal", "-c", d / f"{m}.h5", "--g0", d / "g0.pcap", "--g1", d / "g1.pcap", "--g2", d / "g2.pcap",
               "--module-names", m, "-q")
    with h5py.File(d / "M418.h5", "a") as f:  # a module three times as noisy as its neighbour
        f["M418/pedestal_rms"][...] = f["M418/pedestal_rms"][()] * 3
        f["M418"].attrs["row"] = 1
    with h5py.File(d / "M417.h5", "a") as f:
        f["M417"].attrs["column"] = 1
    morgul("calib", "merge", "-o", d / "det.h5", d / "M420.h5", d / "M418.h5", d / "M417.h5", "-q")
    out = morgul("calib", "show", d / "det.h5", "--png", d / "pics").stdout
    lines = out.splitlines()
    flagged = [line for line in lines if "<<" in line and line.startswith("module")]
    assert len(flagged) == 1 and flagged[0].startswith("module M418")
    assert "noisy 20" in out and "stuck 20" in out
    w, h, img = read_png(d / "pics" / "M420_noise_G0.png")
    assert (w, h) == (1024, 512 + 44)
    w, h, img = read_png(d / "pics" / "detector_noise_G0.png")
    assert (w, h) == (2 * 512 + 3 * 12, 2 * 256 + 3 * 12 + 44)  # 2 x 2 places, one empty
    w, h, img = read_png(d / "pics" / "M420_mask.png")
    assert (img[:512] != 0).any(axis=2).sum() >= 60  # the 60 planted pixels are drawn
    read_png(d / "pics" / "M418_pedestal_hist_G1.png")
    assert len(list((d / "pics").glob("*.png"))) == 3 * 13 + 3
