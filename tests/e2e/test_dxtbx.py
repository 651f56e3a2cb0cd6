"""The NXmx files as DIALS sees them: dxtbx (Debian's python3-cctbx), the
library through which DIALS imports images, reads morgul's master file of
a 2-module detector corrected from the real PSI frames: its format, the
detector, beam and scan models, every image (through the standard
bitshuffle plugin), and its mask, which must leave out the gaps, the
calibration's bad pixels and every invalid or saturated pixel, for each
output type (int16, int32, float32)."""
import h5py
import numpy as np
import pytest

from conftest import SHARED, morgul

dxtbx = pytest.importorskip("dxtbx", reason="dxtbx (Debian python3-cctbx) is not installed")
from dxtbx.model.experiment_list import ExperimentListFactory  # noqa: E402

MOD5 = SHARED / "psi-mod5"
pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")
NAMES = "M420,M418"
HC_KEV_A = 12.398419843320026


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two modules of real frames replayed raw, a calibration with PSI's pedestals and gain map for both,
    corrected to int16, int32 and float32."""
    d = tmp_path_factory.mktemp("dxtbx")
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(10))
    morgul("simulate", "-n", 10, "--content", "frames", "--frames-file", frames, "--pcap", d / "c.pcap",
           "--modules", 2, "--module-names", NAMES)
    morgul("replay", d / "c.pcap", "-o", d / "raw", "--modules", 2, "--module-names", NAMES, "-q")
    cal = d / "cal.h5"
    gm = MOD5 / "gainmap_mod5_derived.bin"
    morgul("gainmap", "-c", cal, "--module-names", NAMES, "--gainmap", f"M420={gm}", "--gainmap", f"M418={gm}")
    for m, row in (("M420", 0), ("M418", 1)):
        morgul("calib", "import", "-c", cal, "--module", m, "--row", row, "--pedestal",
               ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3)))
    out = {}
    for t in ("int16", "int32", "float32"):
        morgul("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / t, "--type", t,
               "--distance", 120, "--beam-center", "500.5,600", "--omega", "10,0.1")
        out[t] = d / f"{t}_master.h5"
    return out


def imported(master):
    """What `dials.import` does: one experiment list from the file."""
    experiments = ExperimentListFactory.from_filenames([str(master)])
    assert len(experiments) == 1
    return experiments[0].imageset


def test_format_and_models(runs):
    master = runs["int16"]
    assert "NXmx" in type(dxtbx.load(str(master))).__name__
    iset = imported(master)
    assert len(iset) == 10
    det, beam, scan = iset.get_detector(), iset.get_beam(), iset.get_scan()
    assert len(det) == 1
    p = det[0]
    assert p.get_image_size() == (1030, 2 * 514 + 36)
    assert p.get_pixel_size() == pytest.approx((0.075, 0.075))
    assert p.get_thickness() == pytest.approx(0.32) and p.get_material() == "Si"
    assert p.get_distance() == pytest.approx(120)
    assert p.get_beam_centre_px(beam.get_s0()) == pytest.approx((500.5, 600), abs=1e-6)
    assert beam.get_wavelength() == pytest.approx(HC_KEV_A / 12.4, rel=1e-6)
    assert scan.get_image_range() == (1, 10)
    assert scan.get_oscillation() == pytest.approx((10, 0.1))
    assert iset.get_goniometer() is not None


TYPES = [("int16", -32768, 32767, (-32767, 32766)), ("int32", -1, 2**31 - 1, (0, 2**31 - 2)),
         ("float32", np.nan, np.inf, (-np.finfo(np.float32).max, np.finfo(np.float32).max))]


@pytest.mark.parametrize("kind,invalid,saturated,valid", TYPES)
def test_images_and_mask(runs, kind, invalid, saturated, valid):
    """Every image as stored; the trusted range is the valid values' (the
    ends one step inside the saturated and invalid markers, so that readers
    that include an end and readers that exclude it agree); the mask leaves
    out exactly the gaps, the calibration's bad pixels, the invalid and the
    saturated pixels."""
    master = runs[kind]
    iset = imported(master)
    with h5py.File(master, "r") as f:
        data = f["entry/data/data"][()]
        pm = f["entry/instrument/detector/pixel_mask"][()]
        det = f["entry/instrument/detector"]
        assert (det["underload_value"][()], det["saturation_value"][()]) == pytest.approx(valid)
    lo, hi = iset.get_detector()[0].get_trusted_range()
    assert lo <= valid[0] and hi >= valid[1] and np.isfinite(hi)
    gap_rows = slice(514, 514 + 36)
    assert (pm[gap_rows] & 1).all()
    is_invalid = np.isnan(data) if kind == "float32" else data == invalid
    for k in range(10):
        img = iset.get_raw_data(k)[0].as_numpy_array()
        assert img.dtype.kind == ("f" if kind == "float32" else "i")
        assert np.array_equal(img, data[k], equal_nan=True)
        mask = iset.get_mask(k)[0].as_numpy_array()  # True: trusted
        bad = (pm != 0) | is_invalid[k] | (data[k] == saturated)
        assert is_invalid[k].sum() > 0 and (data[k] == saturated).sum() > 0
        assert (mask == ~bad).all(), f"frame {k}: {(mask != ~bad).sum()} pixels trusted differently"
        # what is trusted lies inside [underload_value, saturation_value]
        good = data[k][mask]
        assert good.min() >= valid[0] and good.max() <= valid[1]
