"""Storage cells (burst mode): dark runs whose frames cycle through 4 cells,
each cell with its own pedestals, give per-cell constants within their
statistical error (from captures, raw files and several workers alike), with planted bad
pixels masked in every cell; photons are converted with the constants of
the cell each frame names (inline == offline), a cell the calibration lacks
comes out invalid and counted; live dark runs write what offline ones do;
the run-time pedestal is found per cell;
merge, export and show keep the cells."""
import h5py
import numpy as np
import pytest

from conftest import Receiver, morgul
from test_pedestal import BIT, planted, truth_files

CELLS = 4
FRAMES = (120, 40, 40)  # per gain: 30, 10, 10 per cell
PIX = np.arange(512 * 1024, dtype=np.int64).reshape(512, 1024)


def offset(c):
    """What the simulator adds to every gain's pedestal in cell c (morgul simulate --help)."""
    return np.zeros((512, 1024)) if c == 0 else 25.0 * c + (PIX * c) % 7 - 3


def read_cells(path, module="M420"):
    with h5py.File(path, "r") as f:
        g = f[module]
        return {k: g[k][()] for k in ("pedestal", "pedestal_rms", "frames_used", "mask")} | {"attrs": dict(g.attrs)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cells")
    ped, noise, pfiles, nfile = truth_files(d, seed=7)
    for g, n in enumerate(FRAMES):
        morgul("simulate", "--content", "dark", "--gain", g, "-n", n, "--storage-cells", CELLS, "--pcap",
               d / f"g{g}.pcap", "--seed", 20 + g, "--pedestal", pfiles, "--noise-file", nfile, "--module-names", "M420",
               "--bad-pixels", "noisy=40,stuck=40,dead=40", "--bad-pixel-log", d / "bad.csv")
    runs = ["--g0", d / "g0.pcap", "--g1", d / "g1.pcap", "--g2", d / "g2.pcap", "--module-names", "M420"]
    out = morgul("pedestal", "-c", d / "cal.h5", *runs, "--storage-cells", CELLS)
    gmap = d / "gain.bin"
    np.stack([np.full((512, 1024), 41.0), np.full((512, 1024), -1.44), np.full((512, 1024), -0.115)]).tofile(gmap)
    morgul("gainmap", "-c", d / "cal.h5", "--module-names", "M420", "--gainmap", f"M420={gmap}")
    return d, ped, noise, pfiles, nfile, runs, out, gmap


def test_constants_per_cell(runs):
    d, ped, noise, pfiles, nfile, _, out, _ = runs
    assert "4 storage cells" in out.stdout
    cal = read_cells(d / "cal.h5")
    assert cal["pedestal"].shape == (CELLS, 3, 512, 1024) and cal["mask"].shape == (CELLS, 512, 1024)
    assert cal["attrs"]["storage_cells"] == CELLS
    assert list(cal["attrs"]["dark_frames"]) == list(FRAMES)
    assert cal["attrs"]["cell_dark_frames"].tolist() == [[n // CELLS for n in FRAMES]] * CELLS
    bad = planted(d)
    is_bad = np.zeros((512, 1024), bool)
    for r, c in bad.values():
        is_bad[r, c] = True
    sd = np.stack([noise, np.full_like(noise, 4), np.full_like(noise, 3)])
    for c in range(CELLS):
        for g in range(3):
            n = cal["frames_used"][c, g]
            ok = ~is_bad & (n > 0)
            err = np.abs(cal["pedestal"][c, g] - (ped[g] + offset(c)))[ok]
            assert (err <= 5 * (sd[g] / np.sqrt(np.maximum(n, 1)))[ok] + 0.3).all(), (c, g, err.max())
        for kind in ("noisy", "stuck", "dead"):  # planted pixels masked in every cell
            r, col = bad[kind]
            assert ((cal["mask"][c][r, col] >> BIT[kind]) & 1).all(), (c, kind)
        assert ((cal["mask"][c] != 0) & ~is_bad).sum() < 0.001 * 512 * 1024, c


def test_raw_files_give_the_same_cells(runs):
    d, *_ = runs
    morgul("replay", d / "g0.pcap", "-o", d / "g0raw", "--module-names", "M420", "-q")
    morgul("pedestal", "-c", d / "raw.h5", "--g0", d / "g0raw_master.h5", "--storage-cells", CELLS, "-q")
    morgul("pedestal", "-c", d / "cap.h5", "--g0", d / "g0.pcap", "--module-names", "M420", "--storage-cells", CELLS,
           "-q")
    a, b = read_cells(d / "raw.h5"), read_cells(d / "cap.h5")
    assert np.array_equal(a["pedestal"][:, 0], b["pedestal"][:, 0])
    assert np.array_equal(a["frames_used"], b["frames_used"])
    # several workers (each cell's frames to one of them) give exactly the same sums
    morgul("replay", d / "g0.pcap", "--module-names", "M420", "--pedestal", d / "par.h5", "--workers", 3,
           "--storage-cells", CELLS, "-q")
    c = read_cells(d / "par.h5")
    assert np.array_equal(c["pedestal"], b["pedestal"], equal_nan=True)
    assert np.array_equal(c["pedestal_rms"], b["pedestal_rms"], equal_nan=True)
    # without cells each worker sums into its own accumulators, merged at the end: the same again
    morgul("replay", d / "g0.pcap", "--module-names", "M420", "--pedestal", d / "par1.h5", "--workers", 2, "-q")
    morgul("pedestal", "-c", d / "one1.h5", "--g0", d / "g0.pcap", "--module-names", "M420", "-q")
    c, b = read_cells(d / "par1.h5"), read_cells(d / "one1.h5")
    for k in ("pedestal", "pedestal_rms", "frames_used"):
        assert np.array_equal(c[k], b[k], equal_nan=True), k


def test_live_dark_run_per_cell_equals_offline(runs, port):
    d, ped, noise, pfiles, nfile, *_ = runs
    sim = ["--content", "dark", "-n", 40, "--storage-cells", CELLS, "--module-names", "M420", "--seed", 9,
           "--pedestal", pfiles, "--noise-file", nfile]
    rx = Receiver("--module-names", "M420", "--port", port, "--pedestal", d / "live.h5", "--storage-cells", CELLS,
                  "-n", 40, "--idle-timeout", 3).start()
    morgul("simulate", *sim, "--port", port, "--rate", 200)
    assert rx.wait() == 0, rx.output
    morgul("simulate", *sim, "--pcap", d / "live.pcap")
    morgul("pedestal", "-c", d / "live_off.h5", "--g0", d / "live.pcap", "--module-names", "M420", "--storage-cells",
           CELLS, "-q")
    a, b = read_cells(d / "live.h5"), read_cells(d / "live_off.h5")
    assert a["pedestal"].shape == (CELLS, 3, 512, 1024)
    assert np.array_equal(a["pedestal"], b["pedestal"], equal_nan=True)
    assert np.array_equal(a["mask"], b["mask"])


def test_cells_not_asked_for_or_fewer_are_said(runs):
    d, *_, run_args, _, _ = runs
    out = morgul("pedestal", "-c", d / "avg.h5", *run_args)
    assert "name 4 different storage cells but were averaged as one" in out.stdout
    assert read_cells(d / "avg.h5")["pedestal"].shape == (3, 512, 1024)
    out = morgul("pedestal", "-c", d / "two.h5", "--g0", d / "g0.pcap", "--module-names", "M420",
                 "--storage-cells", 2, "-q")
    assert "60 frame(s) named a storage cell beyond --storage-cells 2 and were left out" in out.stdout
    assert read_cells(d / "two.h5")["attrs"]["cell_dark_frames"].tolist() == [[30, 0, 0], [30, 0, 0]]
    # a file with one cell count does not take dark runs of another
    r = morgul("pedestal", "-c", d / "avg.h5", "--g0", d / "g0.pcap", "--module-names", "M420", "--storage-cells",
               CELLS, check=False)
    assert r.returncode != 0 and "1 storage cell(s), these dark runs have 4" in r.stdout


def photons(d, name, pfiles, nfile, n=16, shutter=0, seed=3):
    morgul("simulate", "--content", "photons", "-n", n, "--storage-cells", CELLS, "--module-names", "M420",
           "--pedestal", pfiles, "--noise-file", nfile, "--seed", seed, "--shutter-opens", shutter,
           "--truth", d / f"{name}_truth.bin", "--pcap", d / f"{name}.pcap", "--overwrite")
    return np.fromfile(d / f"{name}_truth.bin", np.int32).reshape(n, 512, 1024)


def raw_layout(prefix):
    with h5py.File(f"{prefix}_master.h5", "r") as f:
        return f["entry/data/data"][()].reshape(-1, 512, 1024)


def residual_by_cell(data, truth):
    """The median of (output - truth) over the frames of each cell, in photons, G0 pixels only."""
    out = []
    for c in range(CELLS):
        x, t = data[c::CELLS], truth[c::CELLS]
        ok = np.isfinite(x) & (t < 20)
        out.append(float(np.median((x - t)[ok])))
    return out


def test_conversion_uses_each_frames_cell(runs):
    d, ped, noise, pfiles, nfile, run_args, _, gmap = runs
    truth = photons(d, "ph", pfiles, nfile)
    common = ["--energy", 12.4, "--type", "float32", "--raw-layout"]
    morgul("replay", d / "ph.pcap", "--module-names", "M420", "-c", d / "cal.h5", *common, "-o", d / "inl")
    data = raw_layout(d / "inl")
    res = residual_by_cell(data, truth)
    assert all(abs(r) < 0.01 for r in res), res
    ok = np.isfinite(data) & (truth < 1000)
    assert (np.abs(data - truth)[ok] < 0.5).mean() > 0.999
    # offline from the raw frames: the same
    morgul("replay", d / "ph.pcap", "--module-names", "M420", "-o", d / "phraw", "-q")
    morgul("correct", d / "phraw_master.h5", "-c", d / "cal.h5", *common, "-o", d / "off")
    assert np.array_equal(raw_layout(d / "off"), data, equal_nan=True)
    # constants averaged over the cells are off by each cell's offset (75 ADU in cell 3, 0.15 photon)
    morgul("gainmap", "-c", d / "avg.h5", "--module-names", "M420", "--gainmap", f"M420={gmap}")
    morgul("replay", d / "ph.pcap", "--module-names", "M420", "-c", d / "avg.h5", *common, "-o", d / "avg")
    res_avg = residual_by_cell(raw_layout(d / "avg"), truth)
    assert res_avg[3] > 0.05 and res_avg[0] < -0.05, res_avg


def test_a_cell_without_constants_is_invalid_and_counted(runs):
    d, ped, noise, pfiles, nfile, *_ = runs
    photons(d, "ph2", pfiles, nfile, n=8, seed=4)
    morgul("replay", d / "ph2.pcap", "--module-names", "M420", "-c", d / "cal.h5", "--energy", 12.4, "--type",
           "float32", "--raw-layout", "-o", d / "full")
    # the full calibration's first two cells only
    with h5py.File(d / "cal.h5", "r") as f, h5py.File(d / "two_cells.h5", "w") as o:
        g = o.create_group("M420")
        for k in ("pedestal", "pedestal_rms", "mask", "frames_used", "wrong_gain"):
            g[k] = f["M420"][k][:2]
        g["gain"] = f["M420/gain"][()]
        for k, v in f["M420"].attrs.items():
            g.attrs[k] = v
        g.attrs["storage_cells"] = 2
    r = morgul("replay", d / "ph2.pcap", "--module-names", "M420", "-c", d / "two_cells.h5", "--energy", 12.4,
               "--type", "float32", "--raw-layout", "-o", d / "part")
    assert "4 module-frames came from a storage cell the calibration has no constants for" in r.stdout
    part, full = raw_layout(d / "part"), raw_layout(d / "full")
    for k in range(8):
        if k % CELLS < 2:
            assert np.array_equal(part[k], full[k], equal_nan=True), k
        else:
            assert np.isnan(part[k]).all(), k
    with h5py.File(d / "part_master.h5", "r") as f:
        assert f["run/module_frames_uncalibrated_cell"][()] == 4


def test_runtime_pedestal_per_cell(runs):
    d, ped, noise, pfiles, nfile, *_ = runs
    drifted = []
    for g in range(3):
        (ped[g] + (20 if g == 0 else 0)).astype(np.float32).tofile(d / f"drift{g}.bin")
        drifted.append(str(d / f"drift{g}.bin"))
    photons(d, "rt", ",".join(drifted), nfile, n=24, shutter=16, seed=5)
    out = morgul("replay", d / "rt.pcap", "--module-names", "M420", "-c", d / "cal.h5", "--energy", 12.4,
                 "--type", "float32", "--raw-layout", "--runtime-pedestal", "auto", "-o", d / "rt")
    assert "16 dark frame(s), signal from frame 16 on" in out.stdout
    with h5py.File(d / "rt_master.h5", "r") as f:
        rp = f["entry/instrument/detector/jungfrau/runtime_pedestal"]
        p0 = rp["M420"][()]
        assert rp["onset"][()] == 16
    assert p0.shape == (CELLS, 512, 1024)
    ok = noise < 20
    for c in range(CELLS):  # 4 dark frames per cell: each cell's own pedestal + the drift
        shift = (p0[c] - (ped[0] + offset(c)))[ok]
        assert abs(np.median(shift) - 20) < 1, (c, np.median(shift))


def test_merge_export_show_keep_cells(runs):
    d, *_ = runs
    morgul("pedestal", "-c", d / "m0.h5", "--g0", d / "g0.pcap", "--module-names", "M420", "--storage-cells", CELLS,
           "-q")
    morgul("pedestal", "-c", d / "m12.h5", "--g1", d / "g1.pcap", "--g2", d / "g2.pcap", "--module-names", "M420",
           "--storage-cells", CELLS, "-q")
    morgul("calib", "merge", "-o", d / "merged.h5", d / "m0.h5", d / "m12.h5")
    a, b = read_cells(d / "merged.h5"), read_cells(d / "cal.h5")
    assert np.array_equal(a["pedestal"], b["pedestal"], equal_nan=True)
    assert np.array_equal(a["mask"], b["mask"])
    r = morgul("calib", "merge", "-o", d / "bad.h5", d / "m0.h5", d / "avg.h5", check=False)
    assert r.returncode != 0 and "storage cell" in r.stdout
    morgul("calib", "export", d / "cal.h5", "-o", d / "exp.h5", "--module-names", "M420")
    with h5py.File(d / "exp.h5", "r") as f:
        assert f["pedestals"].shape == (CELLS, 3, 1, 512, 1024)
        assert f["pixel_status"].shape == (CELLS, 3, 1, 512, 1024)
        assert f["pixel_gain"].shape == (3, 1, 512, 1024)
        assert np.array_equal(f["pedestals"][2, 1, 0], b["pedestal"][2, 1], equal_nan=True)
    out = morgul("calib", "show", d / "cal.h5", "--png", d / "png").stdout
    assert "M420_cell03" in out and "with storage cells" in out
    assert (d / "png" / "M420_cell03_pedestal_G0.png").exists()
