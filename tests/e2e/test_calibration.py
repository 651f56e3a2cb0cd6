"""Calibration constants in: `morgul gainmap` finds and reads PSI gain maps,
`morgul calib import` reads pedestals in the formats in use elsewhere, into
one calibration file per detector; wrong inputs are refused with a message
that names the problem."""
import h5py
import numpy as np
import pytest

from conftest import SHARED, morgul

MOD5 = SHARED / "psi-mod5"
pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")


def ini(tmp, names=("M420",), calib=None):
    text = "[detector]\nname = jf\n" + (f"calibration = {calib}\n" if calib else "")
    for i, n in enumerate(names):
        text += f"\n[jf-{i:02d}]\nmodule = {n}\nrow = {i}\n"
    p = tmp / "det.ini"
    p.write_text(text)
    return p


def gain_dir(tmp, names=("M420",)):
    d = tmp / "gainmaps"
    for n in names:
        (d / f"{n}_fullspeed").mkdir(parents=True)
        (d / f"{n}_fullspeed" / f"gainMaps_{n}_2023-01-24.bin").symlink_to(MOD5 / "gainmap_mod5_derived.bin")
    return d


def test_gainmap_found_and_stored(tmp):
    cal = tmp / "cal.h5"
    out = morgul("gainmap", "-c", cal, "--config", ini(tmp, ("M420", "M418"), gain_dir(tmp, ("M420", "M418")))).stdout
    assert "M418" in out
    want = np.fromfile(MOD5 / "gainmap_mod5_derived.bin", dtype=np.float64).reshape(3, 512, 1024)
    with h5py.File(cal, "r") as f:
        assert sorted(f) == ["M418", "M420"]
        np.testing.assert_array_equal(f["M420/gain"][()], want)
        assert f["M418"].attrs["row"] == 1
        assert "pedestal" not in f["M420"]


def test_module_names_alone_give_the_module_count(tmp):
    d = gain_dir(tmp, ("M420", "M418", "M401"))
    morgul("gainmap", "-c", tmp / "cal.h5", "--module-names", "M420,M418,M401", "--dir", d)
    with h5py.File(tmp / "cal.h5", "r") as f:
        assert sorted(f) == ["M401", "M418", "M420"] and f["M401"].attrs["row"] == 2
    r = morgul("gainmap", "-c", tmp / "two.h5", "--modules", 2, "--module-names", "M420,M418,M401", "--dir", d,
               check=False)
    assert r.returncode != 0 and "more modules than --modules 2" in r.stdout


def test_gainmap_errors(tmp):
    cal = tmp / "cal.h5"
    d = gain_dir(tmp)
    p = morgul("gainmap", "-c", cal, "--config", ini(tmp, ("M420", "M999")), "--dir", d, check=False)
    assert p.returncode == 1 and "no gain map for module M999" in p.stdout and "--gainmap M999=FILE" in p.stdout
    (d / "gainMaps_M420_old.bin").symlink_to(MOD5 / "gainmap_mod5_derived.bin")
    p = morgul("gainmap", "-c", cal, "--config", ini(tmp), "--dir", d, check=False)
    assert p.returncode == 1 and "2 gain maps for module M420" in p.stdout
    short = tmp / "short.bin"
    short.write_bytes(bytes(1000))
    p = morgul("gainmap", "-c", cal, "--config", ini(tmp), "--gainmap", f"M420={short}", check=False)
    assert p.returncode == 1 and "3 or 6 planes" in p.stdout
    assert not cal.exists()


def test_import_raw_planes_then_gainmap(tmp):
    cal = tmp / "cal.h5"
    planes = ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3))
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", planes, "--rms", MOD5 / "mod5_pedeG0_RMS.bin")
    morgul("gainmap", "-c", cal, "--config", ini(tmp), "--dir", gain_dir(tmp))  # adds to the same file
    with h5py.File(cal, "r") as f:
        for g in range(3):
            want = np.fromfile(MOD5 / f"mod5_pedeG{g}.bin", dtype=np.float32).reshape(512, 1024)
            np.testing.assert_array_equal(f["M420/pedestal"][g], want)
        np.testing.assert_array_equal(f["M420/pedestal_rms"][0],
                                      np.fromfile(MOD5 / "mod5_pedeG0_RMS.bin", dtype=np.float32).reshape(512, 1024))
        assert np.isnan(f["M420/pedestal_rms"][1]).all()
        assert "gain" in f["M420"]


@pytest.mark.parametrize("layout", ["psi", "morgul-p", "morgul-groups", "morgul-calibration"])
def test_import_hdf5_layouts(tmp, layout):
    rng = np.random.default_rng(1)
    ped = rng.uniform(1000, 15000, (3, 512, 1024)).astype(np.float32)
    src, cal = tmp / "src.h5", tmp / "cal.h5"
    with h5py.File(src, "w") as f:
        if layout == "psi":
            f["gains"] = ped
            f["gainsRMS"] = ped / 100
            f["pixel_mask"] = (ped[0] > 14900).astype(np.uint32)
        elif layout == "morgul-p":
            for g in range(3):
                f[f"p{g}"] = ped[g]
        elif layout == "morgul-groups":
            for g in range(3):
                f[f"M420/pedestal_{g}"] = ped[g]
        else:
            f["M420/pedestal"] = ped
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", src)
    with h5py.File(cal, "r") as f:
        np.testing.assert_array_equal(f["M420/pedestal"][()], ped)
        if layout == "psi":
            np.testing.assert_array_equal(f["M420/pedestal_rms"][()], ped / 100)
            assert f["M420/mask"][()].sum() == (ped[0] > 14900).sum()


def test_import_refuses_wrong_shapes(tmp):
    src, cal = tmp / "src.h5", tmp / "cal.h5"
    with h5py.File(src, "w") as f:
        f["gains"] = np.zeros((3, 256, 1024), np.float32)
    p = morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", src, check=False)
    assert p.returncode == 1 and "gains has shape" in p.stdout
    with h5py.File(src, "w") as f:
        f["something"] = np.zeros(3)
    p = morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", src, check=False)
    assert p.returncode == 1 and "no pedestals for M420 in a known layout" in p.stdout
    bad = tmp / "p.bin"
    bad.write_bytes(bytes(100))
    p = morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", bad, check=False)
    assert p.returncode == 1 and "512x1024 float32" in p.stdout
    assert not cal.exists()
