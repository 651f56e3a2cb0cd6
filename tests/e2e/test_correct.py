"""`morgul correct`: the real PSI module frames, replayed from a capture and
written raw by morgul, corrected with their pedestals and gain map at
12.4 keV, give PSI's reference conversion; the NXmx master has the fields
DIALS and XDS read; a calibration or energy that does not fit is refused
before any frame is read."""
import h5py
import numpy as np
import pytest

from conftest import LOSS, SHARED, morgul

MOD5 = SHARED / "psi-mod5"
pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    """The 10 real frames as a capture, replayed into morgul's raw files, and a calibration file."""
    d = tmp_path_factory.mktemp("correct")
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(10))
    morgul("simulate", "-n", 10, "--content", "frames", "--frames-file", frames, "--pcap", d / "c.pcap",
           "--module-names", "M420")
    morgul("replay", d / "c.pcap", "-o", d / "raw", "--module-names", "M420", "-q")
    cal = d / "cal.h5"
    morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={MOD5 / 'gainmap_mod5_derived.bin'}")
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal",
           ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3)))
    return d, d / "raw_master.h5", cal


def reference(k):
    conv = np.fromfile(MOD5 / f"mod5_conv{k}.bin", dtype=np.float32).reshape(512, 1024)
    return np.sign(conv) * np.floor(np.abs(conv) + 0.5)


def test_real_frames_match_psi(raw_run):
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "flat", "--raw-layout")
    with h5py.File(d / "flat_master.h5", "r") as f:
        data = f["entry/data/data"][()]
    assert data.shape == (10, 512, 1024) and data.dtype == np.int16
    exact = total = far = 0
    for k in range(10):
        raw_words = np.fromfile(MOD5 / f"mod5_raw{k}.bin", dtype=np.uint16).reshape(512, 1024)
        v, ref = data[k], reference(k)
        assert (v[raw_words == 0xC000] == 32767).all()
        valid = (v != -32768) & (raw_words != 0xC000)
        exact += (v[valid] == ref[valid]).sum()
        total += valid.sum()
        g0 = valid & (raw_words >> 14 == 0)
        far += (np.abs(v[g0] - ref[g0]) > 1).sum()
    assert total > 10 * 523000
    assert exact >= 0.999 * total
    assert far == 0


def test_nxmx_master(raw_run):
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--wavelength", 0.9998725680096795, "-o", d / "nx", "--distance", 120,
           "--beam-center", "500.5,250", "--omega", "10,0.1", "--overwrite")
    flat = d / "flat_master.h5"
    if not flat.exists():
        morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "flat", "--raw-layout")
    with h5py.File(d / "nx_master.h5", "r") as f, h5py.File(flat, "r") as g:
        cls = lambda p: f[p].attrs["NX_class"].decode() if isinstance(f[p].attrs["NX_class"], bytes) else f[p].attrs["NX_class"]
        units = lambda p: f[p].attrs["units"].decode() if isinstance(f[p].attrs["units"], bytes) else f[p].attrs["units"]
        assert cls("entry") == "NXentry" and cls("entry/data") == "NXdata"
        assert cls("entry/instrument/detector") == "NXdetector"
        assert cls("entry/instrument/detector/module") == "NXdetector_module"
        assert f["entry/definition"][()] == b"NXmx"
        det = "entry/instrument/detector"
        assert f[det + "/x_pixel_size"][()] == pytest.approx(75e-6) and units(det + "/x_pixel_size") == "m"
        assert f[det + "/sensor_thickness"][()] == pytest.approx(320e-6)
        assert f[det + "/sensor_material"][()] == b"Si"
        assert f[det + "/saturation_value"][()] == 32766 and f[det + "/underload_value"][()] == -32767
        assert f[det + "/distance"][()] == pytest.approx(0.12) and units(det + "/distance") == "m"
        assert f[det + "/beam_center_x"][()] == pytest.approx(500.5) and units(det + "/beam_center_x") == "pixel"
        assert f[det + "/depends_on"][()] == b"/entry/instrument/detector/transformations/translation"
        assert f[det + "/transformations/translation"][()] == pytest.approx(0.12)
        assert list(f[det + "/module/data_size"][()]) == [514, 1030]
        fast = f[det + "/module/fast_pixel_direction"]
        assert list(fast.attrs["vector"]) == [-1, 0, 0]
        assert fast.attrs["depends_on"] in (b"/entry/instrument/detector/module/module_offset",
                                            "/entry/instrument/detector/module/module_offset")
        assert f["entry/instrument/beam/incident_wavelength"][()] == pytest.approx(0.99987, abs=1e-5)
        assert units("entry/instrument/beam/incident_wavelength") == "angstrom"
        assert f[det + "/count_time"][()] == pytest.approx(10e-6)  # the simulator's default exposure
        mask = f[det + "/pixel_mask"][()]
        assert mask.shape == (514, 1030) and mask.dtype == np.uint32
        assert (mask[:, 255] & (1 << 31)).all() and (mask[:, 256] & (1 << 31)).all()
        assert mask[0, 0] == 0
        # the records of the packet path came along
        assert list(f[det + "/jungfrau/frames/packets_received"][:, 0]) == [128] * 10
        assert f[det + "/jungfrau/detector/module_name"][0] == b"M420"
        # a rotation series: omega per frame
        assert f["entry/sample/depends_on"][()] == b"/entry/sample/transformations/omega"
        omega = f["entry/sample/transformations/omega"]
        np.testing.assert_allclose(omega[()], 10 + 0.1 * np.arange(10))
        assert units("entry/sample/transformations/omega") == "deg"
        assert omega.attrs["transformation_type"] in (b"rotation", "rotation")
        # images: the expanded module of the flat one, rows flipped, big pixels split
        img, flat_img = f["entry/data/data"][3], g["entry/data/data"][3]
        assert img.shape == (514, 1030)
        assert img[513 - 10, 20] == flat_img[10, 20]            # raw (10, 20): no big pixel
        assert img[513 - 300, 600] == flat_img[298, 596]       # raw (298, 596)
        v = int(flat_img[100, 255])
        if v not in (32767, -32768):
            assert int(img[513 - 100, 255]) + int(img[513 - 100, 256]) == v


def test_xds_plugin_layout(raw_run, tmp_path, monkeypatch):
    """What XDS's plugins read: Neggia (its README's requirements, the Eiger
    layout): detectorSpecific/nimages and ntrigger, a uint32 pixel_mask there
    of the image's shape, and the frames as /entry/data/data_NNNNNN, one per
    data file, chunked one frame each, frame k in data_(k // n + 1) at k % n
    with n the frames of data_000001; links found from any working directory.
    Durin (its source's conditions) takes the same data_NNNNNN and reads their
    chunks directly when the filter is bitshuffle/LZ4 as below."""
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", tmp_path / "x", "--frames-per-file", 4)
    monkeypatch.chdir("/")
    with h5py.File(tmp_path / "x_master.h5", "r") as f:
        ds = f["entry/instrument/detector/detectorSpecific"]
        assert ds["nimages"][()] == 10 and ds["ntrigger"][()] == 1
        assert ds["nimages"].dtype.kind in "ui" and ds["ntrigger"].dtype.kind in "ui"
        mask = ds["pixel_mask"]
        assert mask.dtype == np.uint32 and mask.shape == (514, 1030)
        assert (mask[()] == f["entry/instrument/detector/pixel_mask"][()]).all()
        assert ds["x_pixels_in_detector"][()] == 1030 and ds["y_pixels_in_detector"][()] == 514
        assert f["entry/instrument/detector/x_pixel_size"].dtype.kind == "f"
        names = sorted(k for k in f["entry/data"] if k.startswith("data_"))
        assert names == ["data_000001", "data_000002", "data_000003"]
        link = f["entry/data"].get("data_000002", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == "x_data_000002.h5"
        first = f["entry/data/data_000001"]
        n = first.shape[0]
        assert n == 4 and first.dtype.kind == "i" and first.chunks == (1, 514, 1030)
        assert [f["entry/data/" + k].shape[0] for k in names] == [4, 4, 2]
        # Durin reads the chunks itself when the one filter is bitshuffle with at most 5 parameters,
        # [2] the element size and [4] 2 (LZ4), and the chunk's header gives the frame's size
        fid, _, cd, _ = first.id.get_create_plist().get_filter(0)
        assert fid == 32008 and len(cd) <= 5 and cd[2] == first.dtype.itemsize and cd[4] == 2
        _, chunk = first.id.read_direct_chunk((1, 0, 0))
        assert int.from_bytes(chunk[:8], "big") == 514 * 1030 * first.dtype.itemsize
        whole = f["entry/data/data"][()]
        assert ds["nimages"][()] * ds["ntrigger"][()] == len(whole)  # Neggia's number of frames
        for k in range(10):
            assert (f[f"entry/data/data_{k // n + 1:06d}"][k % n] == whole[k]).all()


@pytest.mark.parametrize("kind", ["int32", "float32"])
def test_other_types(raw_run, kind):
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / kind, "--raw-layout", "--type", kind)
    with h5py.File(d / f"{kind}_master.h5", "r") as f:
        v = f["entry/data/data"][0]
    ref = reference(0)
    raw0 = np.fromfile(MOD5 / "mod5_raw0.bin", dtype=np.uint16).reshape(512, 1024)
    if kind == "int32":
        assert v.dtype == np.int32 and (v[raw0 == 0xC000] == 2**31 - 1).all()
        ok = (v >= 0) & (raw0 != 0xC000)
        assert (v[ok] == np.maximum(ref[ok], 0)).mean() > 0.999
    else:
        assert v.dtype == np.float32 and np.isinf(v[raw0 == 0xC000]).all()
        conv = np.fromfile(MOD5 / "mod5_conv0.bin", dtype=np.float32).reshape(512, 1024)
        ok = np.isfinite(v)
        diff = np.abs(v[ok] - conv[ok])
        assert (diff < 1e-2).mean() > 0.999 and diff.max() < 0.05  # the derived gain map is not PSI's own


def test_refused_before_reading(raw_run, tmp_path):
    d, raw, cal = raw_run
    p = morgul("correct", raw, "-c", cal, "-o", tmp_path / "x", check=False)
    assert p.returncode == 2 and "--energy" in p.stdout
    other = tmp_path / "other.h5"
    morgul("gainmap", "-c", other, "--module-names", "M999", "--gainmap", f"M999={MOD5 / 'gainmap_mod5_derived.bin'}")
    p = morgul("correct", raw, "-c", other, "--energy", 12.4, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "no module M420" in p.stdout
    nopeds = tmp_path / "nopeds.h5"
    morgul("gainmap", "-c", nopeds, "--module-names", "M420", "--gainmap", f"M420={MOD5 / 'gainmap_mod5_derived.bin'}")
    p = morgul("correct", raw, "-c", nopeds, "--energy", 12.4, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "M420 has no pedestals" in p.stdout
    p = morgul("correct", cal, "-c", cal, "--energy", 12.4, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "not a raw file" in p.stdout
    assert not list(tmp_path.glob("x_*"))


def test_threads_and_a_corrupt_frame(raw_run, tmp_path):
    """Any number of correcting threads writes the same frames in the same
    order; a frame whose chunk is corrupt stops the run with an error naming
    it, and every frame before it is still written, whatever the threads."""
    import shutil
    d, raw, cal = raw_run
    images = {}
    for t in (1, 3):
        morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", tmp_path / f"t{t}", "--threads", t)
        with h5py.File(tmp_path / f"t{t}_master.h5", "r") as f:
            images[t] = f["entry/data/data"][()]
    assert images[1].shape[0] == 10 and (images[1] == images[3]).all()
    # frame 6's first block claims more bytes than its chunk holds
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in d.glob("raw_*.h5"):
        shutil.copy(p, bad / p.name)
    data_file = sorted(bad.glob("raw_data_*.h5"))[0]
    with h5py.File(data_file, "r") as f:
        ds = next(f[k] for k in ("entry/data/data", "data") if k in f)
        info = ds.id.get_chunk_info_by_coord((6, 0, 0, 0)[:ds.ndim])
    with open(data_file, "r+b") as f:
        f.seek(info.byte_offset + 12)
        f.write(b"\xff\xff\xff\xf0")
    for t in (1, 3):
        p = morgul("correct", bad / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", tmp_path / f"b{t}",
                   "--threads", t, check=False)
        # named in the data file that holds it
        assert p.returncode == 1 and "frame 6 of" in p.stdout and "raw_data_000001.h5" in p.stdout, p.stdout
        with h5py.File(tmp_path / f"b{t}_master.h5", "r") as f:
            got = f["entry/data/data"][()]
        assert got.shape[0] == 6 and (got == images[1][:6]).all()


def single_raw_file(src_master, dst, store, leave_out=()):
    """morgul's raw run (all in its first data file) as one file whose /data
    is stored by `store`, every record, description and attribute copied
    but those in `leave_out`."""
    data_file = src_master.parent / src_master.name.replace("_master.h5", "_data_000001.h5")
    with h5py.File(src_master, "r") as f, h5py.File(data_file, "r") as df, h5py.File(dst, "w") as g:
        # values, not layouts: the master's records are virtual datasets over its data files
        def copy(name, obj):
            if isinstance(obj, h5py.Dataset) and name != "data" and name not in leave_out:
                g.create_dataset(name, data=obj[()])
        f.visititems(copy)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        assert df["data"].shape == f["data"].shape
        store(df["data"], g)


def test_frames_stored_otherwise(raw_run, tmp_path):
    """morgul reads its own chunks as stored and decompresses them itself;
    frames stored any other way (gzip, several frames a chunk, a chunk whose
    filter was skipped, chunks the reference plugin compressed) go through
    HDF5 and correct to the same images.  A truncated chunk stops the run
    with an error naming the frame and the data file."""
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", tmp_path / "want")
    with h5py.File(tmp_path / "want_master.h5", "r") as f:
        want = f["entry/data/data"][()]
    frames = None

    def gzip_pairs(src, g):
        g.create_dataset("data", data=src[()], chunks=(2,) + src.shape[1:], compression="gzip", compression_opts=1)

    def one_unfiltered(src, g):
        # morgul's chunks copied as they are, frame 3's stored without its filter (filter mask 1)
        assert src.id.get_create_plist().get_filter(0)[0] == 32008
        ds = g.create_dataset("data", shape=src.shape, dtype=src.dtype, chunks=src.chunks,
                              compression=32008, compression_opts=(0, 2))
        for k in range(src.shape[0]):
            mask, chunk = src.id.read_direct_chunk((k, 0, 0, 0))
            if k == 3:
                ds.id.write_direct_chunk((k, 0, 0, 0), src[k].tobytes(), filter_mask=1)
            else:
                ds.id.write_direct_chunk((k, 0, 0, 0), chunk, filter_mask=mask)

    def plugin(src, g):
        # compressed by the reference plugin (Debian's), one frame a chunk as morgul writes
        g.create_dataset("data", data=src[()], chunks=src.chunks, compression=32008, compression_opts=(0, 2))

    # the gzip copy also lacks the packet masks (as from a writer that kept none): every packet counts as there
    for name, store in (("gzip", gzip_pairs), ("unfiltered", one_unfiltered), ("plugin", plugin)):
        # the chunks are stored anew, so the raw run's checksums of its own chunks are left behind
        single_raw_file(raw, tmp_path / f"{name}.h5", store,
                        ("frames/chunk_crc32c", "frames/packet_mask") if name == "gzip" else ("frames/chunk_crc32c",))
        morgul("correct", tmp_path / f"{name}.h5", "-c", cal, "--energy", 12.4, "-o", tmp_path / name, "--threads", 2)
        with h5py.File(tmp_path / f"{name}_master.h5", "r") as f:
            np.testing.assert_array_equal(f["entry/data/data"][()], want, err_msg=name)
    # frame 4's chunk cut short: its length no longer covers its blocks
    with h5py.File(tmp_path / "plugin.h5", "r") as f:
        info = f["data"].id.get_chunk_info_by_coord((4, 0, 0, 0))
        frames = f["data"].shape[0]
    with open(tmp_path / "plugin.h5", "r+b") as f:
        f.seek(info.byte_offset + 16)
        f.write(b"\x7f\xff\xff\xff")
    p = morgul("correct", tmp_path / "plugin.h5", "-c", cal, "--energy", 12.4, "-o", tmp_path / "cut",
               "--threads", 2, check=False)
    assert p.returncode == 1 and "frame 4 of" in p.stdout and "plugin.h5" in p.stdout, p.stdout
    with h5py.File(tmp_path / "cut_master.h5", "r") as f:
        got = f["entry/data/data"][()]
    assert frames == 10 and got.shape[0] == 4 and (got == want[:4]).all()


def test_inline_replay_and_receive_equal_offline(raw_run, port):
    """Correcting while the packets come in (replay, and receive over
    loopback) gives the same NXmx images as correcting the raw files."""
    from conftest import Receiver
    d, raw, cal = raw_run
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "off", "--overwrite")
    morgul("replay", d / "c.pcap", "--module-names", "M420", "-o", d / "inl", "--calibration", cal, "--energy", 12.4,
           "-q", "--overwrite")
    rx = Receiver("--module-names", "M420", "--port", port, "-o", d / "live", "-n", 10, "--idle-timeout", 2,
                  "--calibration", cal, "--energy", 12.4, "--overwrite").start()
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(10))
    morgul("simulate", "-n", 10, "--content", "frames", "--frames-file", frames, "--port", port, "--rate", 100,
           "--module-names", "M420")
    assert rx.wait() == 0, rx.output
    with h5py.File(d / "off_master.h5", "r") as a, h5py.File(d / "inl_master.h5", "r") as b, \
            h5py.File(d / "live_master.h5", "r") as c:
        want = a["entry/data/data"][()]
        np.testing.assert_array_equal(b["entry/data/data"][()], want)
        np.testing.assert_array_equal(c["entry/data/data"][()], want)
        assert c["entry/definition"][()] == b"NXmx"
        assert list(c["entry/instrument/detector/jungfrau/frames/packets_received"][:, 0]) == [128] * 10


def test_lost_packets_invalid(raw_run, tmp_path):
    """Packets lost on the way: corrected inline, the rows they carried are
    the invalid value, every other pixel is as in the correction of the
    complete frames, and the packet masks say which.  Written raw and
    corrected offline, the same."""
    d, raw, cal = raw_run
    flat = d / "flat_master.h5"
    if not flat.exists():
        morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "flat", "--raw-layout")
    frames = ",".join(str(MOD5 / f"mod5_raw{k}.bin") for k in range(10))
    morgul("simulate", "-n", 10, "--content", "frames", "--frames-file", frames, "--pcap", tmp_path / "lossy.pcap",
           "--module-names", "M420", "--drop", 0.03, "--seed", 5)
    morgul("replay", tmp_path / "lossy.pcap", "--module-names", "M420", "-o", tmp_path / "inl", "--calibration", cal,
           "--energy", 12.4, "--raw-layout", "-q", status=LOSS)
    with h5py.File(tmp_path / "inl_master.h5", "r") as f, h5py.File(flat, "r") as g:
        got, want = f["entry/data/data"][()], g["entry/data/data"][()]
        rec = f["entry/instrument/detector/jungfrau/frames"]
        assert list(rec["index"][()]) == list(range(10))
        mask = rec["packet_mask"][:, 0, :]
        lost = 0
        for k in range(10):
            for q in range(128):
                rows = slice(4 * q, 4 * q + 4)
                if mask[k, q >> 3] >> (q & 7) & 1:
                    np.testing.assert_array_equal(got[k, rows], want[k, rows])
                else:
                    lost += 1
                    assert (got[k, rows] == -32768).all()
        assert lost == 1280 - rec["packets_received"][()].sum() and 10 < lost < 100
    # the same capture written raw and corrected offline: the same images
    morgul("replay", tmp_path / "lossy.pcap", "--module-names", "M420", "-o", tmp_path / "raw", "-q", status=LOSS)
    morgul("correct", tmp_path / "raw_master.h5", "-c", cal, "--energy", 12.4, "--raw-layout", "-o", tmp_path / "off")
    with h5py.File(tmp_path / "off_master.h5", "r") as f:
        np.testing.assert_array_equal(f["entry/data/data"][()], got)


def test_inline_refused_before_receiving(raw_run, tmp_path, port):
    d, raw, cal = raw_run
    p = morgul("receive", "--port", port, "-o", tmp_path / "x", "--calibration", cal, check=False)
    assert p.returncode == 2 and "photon energy" in p.stdout
    p = morgul("receive", "--port", port, "-o", tmp_path / "x", "--calibration", cal, "--energy", 12.4, "-n", 1,
               check=False)  # modules are named M000 by default: not in the calibration
    assert p.returncode == 1 and "no module M000" in p.stdout
    assert not list(tmp_path.glob("x_*"))


def write_original(path, row, frames=10):
    """A per-module raw file as the original morgul wrote them."""
    data = np.stack([np.fromfile(MOD5 / f"mod5_raw{k}.bin", dtype=np.uint16).reshape(512, 1024)
                     for k in range(frames)])
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["exptime"] = 10e-6
        f["gainmode"] = "dynamic"
        f["timestamp"] = 1700000000.0
        f["row"] = row
        f["column"] = 0


def test_original_morgul_files(raw_run, tmp_path):
    """Two per-module files of the original morgul, named through the
    detector description by their row and column, assembled into one image."""
    d, raw, cal = raw_run
    a, b = tmp_path / "bottom.h5", tmp_path / "top.h5"
    write_original(a, 0)
    write_original(b, 1)
    two = tmp_path / "cal2.h5"
    gm = MOD5 / "gainmap_mod5_derived.bin"
    morgul("gainmap", "-c", two, "--module-names", "M420,M418", "--modules", 2, "--gainmap", f"M420={gm}",
           "--gainmap", f"M418={gm}")
    planes = ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3))
    for m in ("M420", "M418"):
        morgul("calib", "import", "-c", two, "--module", m, "--pedestal", planes)
    ini = tmp_path / "det.ini"
    ini.write_text("[detector]\nname = jf1m\n[a]\nmodule = M418\nrow = 1\n[b]\nmodule = M420\nrow = 0\n")
    morgul("correct", b, a, "-c", two, "--config", ini, "--energy", 12.4, "-o", tmp_path / "orig")
    with h5py.File(tmp_path / "orig_master.h5", "r") as f:
        img = f["entry/data/data"][()]
        names = list(f["entry/instrument/detector/jungfrau/detector/module_name"][()])
        assert f["entry/instrument/detector/count_time"][()] == pytest.approx(10e-6)
    assert img.shape == (10, 2 * 514 + 36, 1030)
    assert names == [b"M418", b"M420"]
    # both modules hold the same frames: the top and bottom halves of the image agree
    np.testing.assert_array_equal(img[:, :514], img[:, 514 + 36:])
    # and they are the conversion of the real frames (rows flipped, raw (10, 20) -> image row 503)
    ref = reference(4)
    assert img[4, 513 - 10, 20] == ref[10, 20] or abs(int(img[4, 513 - 10, 20]) - ref[10, 20]) <= 1
    p = morgul("correct", b, a, "-c", two, "--energy", 12.4, "-o", tmp_path / "x", check=False)
    assert p.returncode == 1 and "no module M000" in p.stdout  # unnamed modules are not in the calibration
