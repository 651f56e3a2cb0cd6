"""Calibration constants are judged before they are trusted: a pixel whose
gain or pedestal no real module shows is masked with its reason and counted;
a module mostly made of them (a gain map in eV, planes in the wrong order,
pedestals of zeros) is refused by every command that would use it, naming the
module, the counts and what to check, and nothing is written."""
import h5py
import numpy as np

from conftest import morgul

P = 512 * 1024
GAIN = np.stack([np.full((512, 1024), 41.0), np.full((512, 1024), -1.44), np.full((512, 1024), -0.115)])


def gain_file(tmp, gain, name="g.bin"):
    p = tmp / name
    gain.astype("<f8").tofile(p)
    return p


def pedestal_file(tmp, ped, name="ped.h5"):
    p = tmp / name
    with h5py.File(p, "w") as f:
        f["gains"] = ped.astype(np.float32)
    return p


def test_unusable_constants_masked_with_reason(tmp):
    g = GAIN.copy()
    g[0, 0, 10], g[0, 0, 11], g[1, 0, 12], g[2, 0, 13] = np.inf, 0, 1.44, np.nan
    cal = tmp / "cal.h5"
    out = morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={gain_file(tmp, g)}").stdout
    assert "4 pixels masked for unusable constants" in out and "G0 gain 2 (bit 17)" in out
    assert "G1 gain 1 (bit 18)" in out and "G2 gain 1 (bit 19)" in out
    ped = np.stack([np.full((512, 1024), 3000.0), np.full((512, 1024), 14000.0), np.full((512, 1024), 15000.0)])
    ped[0, 1, 0] = 0          # PSI's mark of a bad pixel
    ped[1, 1, 1] = 16383
    ped[2, 1, 2] = np.inf
    out = morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", pedestal_file(tmp, ped)).stdout
    assert "7 pixels masked" in out and "G0 pedestal 0/>=16383 1 (bit 15)" in out
    with h5py.File(cal, "r") as f:
        mask = f["M420/mask"][()].reshape(-1, P)[0]
    assert mask[10] == 1 << 17 and mask[11] == 1 << 17 and mask[12] == 1 << 18 and mask[13] == 1 << 19
    assert mask[1024] == mask[1025] == mask[1026] == 1 << 15
    assert np.count_nonzero(mask) == 7
    # the mask reaches the data: those pixels are flagged in the corrected file's pixel mask
    morgul("simulate", "-n", 3, "--module-names", "M420", "--pcap", tmp / "c.pcap")
    morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "r", "--calibration", cal,
           "--energy", 12.4)
    with h5py.File(tmp / "r_master.h5", "r") as f:
        pm = f["entry/instrument/detector/pixel_mask"][()].ravel()
        assert np.count_nonzero(pm) > 0
    # raw rows 0 and 1 are the image's last two (rows flipped; 514 rows with the doubled middle ones)
    assert pm.shape == (514 * 1030,)
    pm = pm.reshape(514, 1030)
    assert list(pm[513, 10:14] >> 17) == [1, 1, 2, 4] and list(pm[512, 0:3] >> 15) == [1, 1, 1]


def test_gain_map_in_other_units_refused(tmp):
    cal = tmp / "cal.h5"
    p = morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={gain_file(tmp, GAIN * 1000)}",
               check=False)
    assert p.returncode != 0
    assert "module M420: 100.0 % of its pixels" in p.stdout
    assert "G0 gain unusable in 524288 (outside 10..200 ADU/keV" in p.stdout
    assert not cal.exists()
    # G1 and G2 swapped: G2's -1.44 is outside -1..-0.01, G1's -0.115 is inside -10..-0.1
    swapped = GAIN[[0, 2, 1]]
    p = morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={gain_file(tmp, swapped)}",
               check=False)
    assert p.returncode != 0 and "G2 gain unusable in 524288" in p.stdout and not cal.exists()


def test_pedestals_of_zeros_refused_calibration_kept(tmp):
    cal = tmp / "cal.h5"
    morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={gain_file(tmp, GAIN)}")
    before = cal.read_bytes()
    ped = np.zeros((3, 512, 1024))
    p = morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", pedestal_file(tmp, ped), check=False)
    assert p.returncode == 1
    assert "G0 pedestal 0, >= 16383 or infinite in 524288" in p.stdout and f"{cal} left as it was" in p.stdout
    assert cal.read_bytes() == before


def test_receive_replay_and_correct_refuse_a_bad_calibration(tmp):
    """A calibration file written by hand (or by another program) is judged when it is loaded."""
    cal = tmp / "cal.h5"
    with h5py.File(cal, "w") as f:
        f.attrs["detector"] = "jungfrau"
        f["M420/pedestal"] = np.full((3, 512, 1024), 3000, np.float32)
        g = GAIN.copy()
        g[0, :100] = np.inf  # 100 rows: 19.5 % of the module
        f["M420/gain"] = g
    morgul("simulate", "-n", 3, "--module-names", "M420", "--pcap", tmp / "c.pcap")
    p = morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "r", "--calibration", cal,
               "--energy", 12.4, check=False)
    assert p.returncode == 1 and "module M420: 19.5 % of its pixels" in p.stdout
    assert "run ended" not in p.stdout  # it never started: the error alone is said
    assert not list(tmp.glob("r_*"))
    morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "raw")
    p = morgul("correct", tmp / "raw_master.h5", "-o", tmp / "cor", "--calibration", cal, "--energy", 12.4,
               check=False)
    assert p.returncode == 1 and "module M420: 19.5 % of its pixels" in p.stdout
    assert not list(tmp.glob("cor*"))
