"""`morgul pedestal` and `receive --pedestal`: pedestals and noise from
simulated dark runs with known per-pixel values come back within their
statistical error; planted bad pixels are masked for the right reason and
few others are; the firmware pedestal mode gives the same constants as three
runs; the live path writes the same file as the offline one for the same
packets."""
import h5py
import numpy as np
import pytest

from conftest import SHARED, Receiver, morgul

MOD5 = SHARED / "psi-mod5"
BIT = {"dead": 1, "noisy": 4, "stuck": 16}


def truth_files(d, seed=1):
    rng = np.random.default_rng(seed)
    ped = np.stack([rng.uniform(1900, 3100, (512, 1024)), rng.uniform(13500, 13700, (512, 1024)),
                    rng.uniform(14000, 14200, (512, 1024))]).astype(np.float32)
    noise = rng.uniform(8, 28, (512, 1024)).astype(np.float32)
    names = []
    for g in range(3):
        ped[g].tofile(d / f"ped{g}.bin")
        names.append(str(d / f"ped{g}.bin"))
    noise.tofile(d / "noise.bin")
    return ped, noise, ",".join(names), d / "noise.bin"


def dark_runs(d, peds, noise, frames=(300, 100, 100), bad=None, seed=5):
    for g, n in enumerate(frames):
        args = ["simulate", "--content", "dark", "--gain", g, "-n", n, "--pcap", d / f"g{g}.pcap", "--seed", seed + g,
                "--pedestal", peds, "--noise-file", noise, "--module-names", "M420", "--overwrite"]
        if bad:
            args += ["--bad-pixels", bad, "--bad-pixel-log", d / "bad.csv"]
        morgul(*args)


def read_cal(path, module="M420"):
    with h5py.File(path, "r") as f:
        g = f[module]
        out = {k: g[k][()] for k in ("pedestal", "pedestal_rms", "frames_used", "wrong_gain", "mask")}
        out["dark_frames"] = g.attrs["dark_frames"]
        out["attrs"] = dict(g.attrs)
    return out


def planted(d):
    rows = np.genfromtxt(d / "bad.csv", delimiter=",", names=True, dtype=None, encoding=None)
    return {kind: (rows["row"][rows["kind"] == kind], rows["column"][rows["kind"] == kind])
            for kind in ("noisy", "wrong-gain", "stuck", "dead")}


def test_recovers_pedestals_and_masks_planted_pixels(tmp_path):
    ped, noise, pfiles, nfile = truth_files(tmp_path)
    dark_runs(tmp_path, pfiles, nfile, bad="noisy=60,wrong-gain=60,stuck=60,dead=60")
    out = morgul("pedestal", "-c", tmp_path / "cal.h5", "--g0", tmp_path / "g0.pcap", "--g1", tmp_path / "g1.pcap",
                 "--g2", tmp_path / "g2.pcap", "--module-names", "M420").stdout
    assert "module M420" in out and "stuck" in out
    cal = read_cal(tmp_path / "cal.h5")
    assert list(cal["dark_frames"]) == [300, 100, 100]
    bad = planted(tmp_path)
    is_bad = np.zeros((512, 1024), bool)
    for r, c in bad.values():
        is_bad[r, c] = True
    # every planted pixel masked for its reason
    for kind, (r, c) in bad.items():
        m = cal["mask"][r, c]
        if kind == "wrong-gain":
            assert ((m >> 12) & 7 == 7).all(), kind  # wrong gain in the G0, G1 and G2 runs
        else:
            assert ((m >> BIT[kind]) & 1).all(), kind
    # few false positives
    false = (cal["mask"] != 0) & ~is_bad
    assert false.sum() < 0.001 * 512 * 1024, false.sum()
    # pedestals within their statistical error (+ the simulator's rounding to whole ADU)
    sd = np.stack([noise, np.full_like(noise, 4), np.full_like(noise, 3)])
    for g in range(3):
        n = cal["frames_used"][g]
        ok = ~is_bad & (n > 0)
        err = np.abs(cal["pedestal"][g] - ped[g])[ok]
        assert (err <= 5 * (sd[g] / np.sqrt(np.maximum(n, 1)))[ok] + 0.3).all(), (g, err.max())
        rms = cal["pedestal_rms"][g][ok]
        want = np.sqrt(sd[g] ** 2 + 1 / 12)[ok]
        assert (np.abs(rms - want) <= 6 * want / np.sqrt(2 * n[ok]) + 0.05).all(), g
    assert cal["attrs"]["source_files"].decode().count(".pcap") == 3
    assert cal["attrs"]["time_taken"] > 1.5e9


def test_pedestal_mode_gives_the_same_constants(tmp_path):
    ped, noise, pfiles, nfile = truth_files(tmp_path, seed=2)
    dark_runs(tmp_path, pfiles, nfile, frames=(160, 40, 40))
    morgul("pedestal", "-c", tmp_path / "three.h5", "--g0", tmp_path / "g0.pcap", "--g1", tmp_path / "g1.pcap",
           "--g2", tmp_path / "g2.pcap", "--module-names", "M420", "-q")
    # F = 2, L = 40: frames 1, 3, .. 79 forced to G1, 81 .. 159 to G2; 200 frames leave 120 in G0
    morgul("simulate", "--content", "dark", "--pedestal-mode", "2,40", "-n", 200, "--pcap", tmp_path / "pm.pcap",
           "--seed", 11, "--pedestal", pfiles, "--noise-file", nfile, "--module-names", "M420")
    morgul("pedestal", "-c", tmp_path / "mode.h5", "--pedestal-mode", "2,40", tmp_path / "pm.pcap",
           "--module-names", "M420", "-q")
    a, b = read_cal(tmp_path / "three.h5"), read_cal(tmp_path / "mode.h5")
    assert list(b["dark_frames"]) == [120, 40, 40]
    sd = np.stack([noise, np.full_like(noise, 4), np.full_like(noise, 3)])
    for g in range(3):
        se = sd[g] * np.sqrt(1 / a["frames_used"][g] + 1 / b["frames_used"][g])
        assert (np.abs(a["pedestal"][g] - b["pedestal"][g]) <= 5 * se + 0.3).all(), g
    assert (a["mask"] == 0).mean() > 0.999 and (b["mask"] == 0).mean() > 0.999


@pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")
def test_matches_psi_pedestals(tmp_path):
    peds = ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3))
    dark_runs(tmp_path, peds, MOD5 / "mod5_pedeG0_RMS.bin", frames=(200, 50, 50))
    morgul("pedestal", "-c", tmp_path / "cal.h5", "--g0", tmp_path / "g0.pcap", "--g1", tmp_path / "g1.pcap",
           "--g2", tmp_path / "g2.pcap", "--module-names", "M420", "-q")
    cal = read_cal(tmp_path / "cal.h5")
    psi = np.stack([np.fromfile(MOD5 / f"mod5_pedeG{g}.bin", np.float32).reshape(512, 1024) for g in range(3)])
    rms = np.fromfile(MOD5 / "mod5_pedeG0_RMS.bin", np.float32).reshape(512, 1024)
    sd = np.stack([rms, np.full_like(rms, 4), np.full_like(rms, 3)])
    usable = (psi > 0).all(0) & (psi < 16383).all(0) & (rms > 0)
    assert usable.sum() > 520000
    for g in range(3):
        n = cal["frames_used"][g]
        err = np.abs(cal["pedestal"][g] - psi[g])[usable]
        assert (err <= (5 * sd[g] / np.sqrt(n) + 0.3)[usable]).all(), (g, err.max())
    # PSI's bad pixels (pedestal 0 or 16383) are masked
    assert (cal["mask"][~((psi[0] > 0) & (psi[0] < 16383))] != 0).all()


def test_live_receive_writes_what_offline_does(tmp_path, port):
    ped, noise, pfiles, nfile = truth_files(tmp_path, seed=3)
    common = ["--content", "dark", "-n", 60, "--seed", 21, "--pedestal", pfiles, "--noise-file", nfile,
              "--module-names", "M420", "--bad-pixels", "noisy=10,stuck=10,dead=10,wrong-gain=10"]
    morgul("simulate", *common, "--pcap", tmp_path / "g0.pcap")
    morgul("pedestal", "-c", tmp_path / "off.h5", "--g0", tmp_path / "g0.pcap", "--module-names", "M420", "-q")
    rx = Receiver("--module-names", "M420", "--port", port, "--pedestal", tmp_path / "live.h5", "-n", 60,
                  "--idle-timeout", 3).start()
    morgul("simulate", *common, "--port", port, "--rate", 200)
    assert rx.wait() == 0, rx.output
    a, b = read_cal(tmp_path / "off.h5"), read_cal(tmp_path / "live.h5")
    for k in ("pedestal", "pedestal_rms", "frames_used", "wrong_gain", "mask"):
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    assert b["attrs"]["source_files"] == b"live"


def test_refusals(tmp_path):
    p = morgul("pedestal", "-c", tmp_path / "x.h5", check=False)
    assert p.returncode == 2 and "--g0" in p.stdout
    p = morgul("pedestal", "-c", tmp_path / "x.h5", "--pedestal-mode", "2,3", "--g0", "a.pcap", "b.pcap", check=False)
    assert p.returncode == 2
    p = morgul("pedestal", "-c", tmp_path / "x.h5", "--g0", tmp_path / "missing.pcap", check=False)
    assert p.returncode == 1 and "missing.pcap" in p.stdout
    morgul("simulate", "--content", "dark", "-n", 3, "--pcap", tmp_path / "g0.pcap")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    p = morgul("pedestal", "-c", tmp_path / "junk.h5", "--g0", tmp_path / "g0.pcap", check=False)
    assert p.returncode == 1 and "junk.h5" in p.stdout
    assert (tmp_path / "junk.h5").read_bytes() == b"not hdf5 at all"  # a file it cannot read is left alone
    p = morgul("pedestal", "-c", tmp_path / "x.h5", "--g0", tmp_path / "g0.pcap", "--gain", 5, check=False)
    assert p.returncode == 2
    # a capture whose every frame lost packets: nothing to average, and the message says why the run ended
    # and what came (a stop, an empty capture and frames that never completed are told apart)
    morgul("simulate", "--content", "dark", "-n", 3, "--drop", 0.5, "--pcap", tmp_path / "half.pcap")
    p = morgul("pedestal", "-c", tmp_path / "x.h5", "--g0", tmp_path / "half.pcap", check=False)
    assert p.returncode == 1 and "no complete frame came" in p.stdout
    assert "the run ended: end of capture" in p.stdout and "3 frames incomplete" in p.stdout
    assert not (tmp_path / "x.h5").exists()


def write_original(path, frames, gainmode, row=0):
    """One module's run as the original morgul's raw file."""
    with h5py.File(path, "w") as f:
        f["data"] = frames
        f["exptime"] = 10e-6
        f["gainmode"] = gainmode
        f["timestamp"] = 1700000000.0
        f["row"] = row
        f["column"] = 0


def test_raw_files_give_what_captures_give(tmp_path):
    """The same dark runs as captures, as morgul raw files and as the
    original morgul's per-module files give identical constants; so does
    the pedestal mode from a raw file."""
    ped, noise, pfiles, nfile = truth_files(tmp_path, seed=4)
    dark_runs(tmp_path, pfiles, nfile, frames=(40, 20, 20), bad="noisy=5,stuck=5,dead=5,wrong-gain=5")
    pcaps = [tmp_path / f"g{g}.pcap" for g in range(3)]
    morgul("pedestal", "-c", tmp_path / "cap.h5", "--g0", pcaps[0], "--g1", pcaps[1], "--g2", pcaps[2],
           "--module-names", "M420", "-q")
    for g in range(3):
        morgul("replay", pcaps[g], "-o", tmp_path / f"raw{g}", "--module-names", "M420", "-q")
    raws = [tmp_path / f"raw{g}_master.h5" for g in range(3)]
    morgul("pedestal", "-c", tmp_path / "raw.h5", "--g0", raws[0], "--g1", raws[1], "--g2", raws[2], "-q")
    modes = ("dynamic", "forceswitchg1", "forceswitchg2")
    for g in range(3):
        with h5py.File(raws[g], "r") as f:
            write_original(tmp_path / f"orig{g}.h5", f["data"][:, 0], modes[g])
    orig = [tmp_path / f"orig{g}.h5" for g in range(3)]
    morgul("pedestal", "-c", tmp_path / "orig.h5", "--g0", orig[0], "--g1", orig[1], "--g2", orig[2],
           "--module-names", "M420", "-q")
    a, b, c = (read_cal(tmp_path / f"{k}.h5") for k in ("cap", "raw", "orig"))
    for k in ("pedestal", "pedestal_rms", "frames_used", "wrong_gain", "mask"):
        assert np.array_equal(a[k], b[k], equal_nan=True), k
        assert np.array_equal(a[k], c[k], equal_nan=True), k
    assert c["attrs"]["exposure_time"] == pytest.approx(10e-6)
    assert c["attrs"]["time_taken"] == pytest.approx(1700000000.0)
    # a file whose gain mode is not the run's is refused, the calibration left alone
    before = (tmp_path / "orig.h5").read_bytes()
    p = morgul("pedestal", "-c", tmp_path / "orig.h5", "--g1", orig[0], "--module-names", "M420", check=False)
    assert p.returncode == 1 and "gainmode says G0" in p.stdout
    assert (tmp_path / "orig.h5").read_bytes() == before
    # firmware pedestal mode from a raw file
    morgul("simulate", "--content", "dark", "--pedestal-mode", "2,5", "-n", 30, "--pcap", tmp_path / "pm.pcap",
           "--seed", 12, "--pedestal", pfiles, "--noise-file", nfile, "--module-names", "M420")
    morgul("pedestal", "-c", tmp_path / "pmc.h5", "--pedestal-mode", "2,5", tmp_path / "pm.pcap",
           "--module-names", "M420", "-q")
    morgul("replay", tmp_path / "pm.pcap", "-o", tmp_path / "pm", "--module-names", "M420", "-q")
    morgul("pedestal", "-c", tmp_path / "pmr.h5", "--pedestal-mode", "2,5", tmp_path / "pm_master.h5", "-q")
    a, b = read_cal(tmp_path / "pmc.h5"), read_cal(tmp_path / "pmr.h5")
    assert list(b["dark_frames"]) == [20, 5, 5]
    for k in ("pedestal", "pedestal_rms", "frames_used", "wrong_gain", "mask"):
        assert np.array_equal(a[k], b[k], equal_nan=True), k
