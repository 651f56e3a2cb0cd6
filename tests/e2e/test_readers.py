"""The corrected files as XDS's plugins see them. Neggia and Durin are not
packaged for Debian, so their documented conditions are checked on the
files, and what each hands XDS is worked out as their sources describe it
(Neggia: elements read as unsigned, at or above the element type's signed
maximum -> -1, pixel_mask bit 0 -> -1, bits 1-4 -> -2; Durin: elements
sign-extended, pixel_mask read as signed int, any bit of the low byte -> -1,
bits 1-4 -> -2). XDS itself trusts values from 0 (MINIMUM_VALID_PIXEL_VALUE)
up to OVERLOAD, which is set to saturation_value. DIALS is tested through
dxtbx in test_dxtbx.py."""
import h5py
import numpy as np
import pytest

from conftest import morgul
from test_correct import MOD5, raw_run  # noqa: F401 (the fixture)

pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")
DET = "entry/instrument/detector"
MARKERS = {"int16": (-32768, 32767), "int32": (-1, 2**31 - 1)}


@pytest.fixture(scope="module")
def outputs(raw_run):  # noqa: F811
    d, raw, cal = raw_run
    out = {}
    for t in ("int16", "int32", "float32"):
        morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / f"rd_{t}", "--type", t, "--frames-per-file", 4)
        out[t] = d / f"rd_{t}_master.h5"
    return out


def nx_groups(f):
    """Durin's search: every group by NX_class, in H5Ovisit's name order."""
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            c = obj.attrs.get("NX_class")
            c = c.decode() if isinstance(c, bytes) else c
            found.setdefault(c, []).append(name)
    f.visititems(visit)
    return found


def xds_trusted(values, saturation_value):
    return (values >= 0) & (values <= saturation_value)


@pytest.mark.parametrize("kind", ["int16", "int32"])
def test_neggia(outputs, kind):
    invalid, saturated = MARKERS[kind]
    with h5py.File(outputs[kind], "r") as f:
        det = f[DET]
        sat = det["saturation_value"][()]
        assert sat == saturated - 1 and det["underload_value"][()] == invalid + 1
        ds = det["detectorSpecific"]
        mask = ds["pixel_mask"]
        # read by Neggia's own HDF5 reader: uint32, 2-D, contiguous and without filters
        assert mask.dtype == np.uint32 and mask.ndim == 2
        assert mask.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
        assert mask.compression is None and mask.chunks is None
        assert mask.id.get_create_plist().get_nfilters() == 0
        for k in ("nimages", "ntrigger"):
            assert ds[k].dtype.kind in "ui" and ds[k][()] > 0
        for k in ("x_pixel_size", "y_pixel_size"):
            assert det[k].dtype.kind == "f"
        first = f["entry/data/data_000001"]
        assert first.dtype.kind == "i" and first.ndim == 3 and first.shape[1:] == mask.shape
        assert first.chunks == (1, *mask.shape)
        n = first.shape[0]
        m = mask[()]
        whole = f["entry/data/data"][()]
        assert ds["nimages"][()] * ds["ntrigger"][()] == len(whole)
        for k in range(len(whole)):
            frame = f[f"entry/data/data_{k // n + 1:06d}"][k % n]
            u = frame.view(np.uint16 if kind == "int16" else np.uint32).astype(np.int64)
            xds = np.where(u >= np.iinfo(frame.dtype).max, -1, u)
            xds = np.where(m & 30, -2, xds)
            xds = np.where(m & 1, -1, xds)
            # every invalid and saturated pixel is untrusted; a trusted value is the stored one
            assert (xds[(frame == invalid) | (frame == saturated)] < 0).all()
            assert ((frame == invalid) | (frame == saturated)).sum() > 0
            t = xds_trusted(xds, sat)
            assert (xds[t] == frame[t]).all()
            # what is lost: the negative photon counts, which XDS leaves out anyway (below 0)
            lost = ~t & (frame >= 0) & (frame != saturated) & (m == 0)
            assert not lost.any()


def test_neggia_refuses_float32(outputs):
    """Neggia would take float32's bits for counts: the file has no
    detectorSpecific group, so Neggia stops, saying it has no pixel mask."""
    with h5py.File(outputs["float32"], "r") as f:
        assert f["entry/data/data"].dtype == np.float32
        assert "detectorSpecific" not in f[DET]
        assert f[DET + "/saturation_value"][()] == np.finfo(np.float32).max


@pytest.mark.parametrize("kind", ["int16", "int32"])
def test_durin(outputs, kind):
    invalid, saturated = MARKERS[kind]
    with h5py.File(outputs[kind], "r") as f:
        groups = nx_groups(f)
        # Durin keeps the last NXdetector and NXdata it visits: there is one of each
        assert groups["NXdetector"] == [DET] and groups["NXdata"] == ["entry/data"]
        det = f[DET]
        sat = det["saturation_value"][()]
        for k in ("x_pixel_size", "y_pixel_size"):
            units = det[k].attrs["units"]
            assert (units.decode() if isinstance(units, bytes) else units) == "m"
        # the data: data_000001... in NXdata, read chunk by chunk when the one filter is bitshuffle
        first = f["entry/data/data_000001"]
        fid, _, cd, _ = first.id.get_create_plist().get_filter(0)
        assert first.id.get_create_plist().get_nfilters() == 1 and fid == 32008 and len(cd) <= 5
        assert first.dtype.kind == "i" and first.dtype.itemsize == cd[2]
        # the mask read as signed int (HDF5 saturates bit 31 to 0x7FFFFFFF)
        m = np.minimum(det["pixel_mask"][()].astype(np.int64), 2**31 - 1)
        n = first.shape[0]
        total = sum(f[f"entry/data/{k}"].shape[0] for k in f["entry/data"] if k.startswith("data_"))
        assert total == f["entry/data/data"].shape[0]
        for k in range(total):
            frame = f[f"entry/data/data_{k // n + 1:06d}"][k % n].astype(np.int64)
            xds = np.where(m & 0xFF, -1, frame)
            xds = np.where(m & 30, -2, xds)
            assert (xds[frame == invalid] < 0).all() and (frame == invalid).sum() > 0
            assert (xds[frame == saturated] > sat).all() and (frame == saturated).sum() > 0
            t = xds_trusted(xds, sat)
            assert (xds[t] == frame[t]).all()
