"""Checksums of every stored chunk: each frame's chunk CRC-32C recorded at
write time (raw and corrected files), HDF5's Fletcher-32 on every
calibration chunk. `morgul verify` names each damaged frame or dataset
(exit 3), intact files pass (exit 0); correct and pedestal refuse a damaged
frame instead of using it; the calibration is refused by every command."""
import h5py
import numpy as np
import pytest

from conftest import LOSS, morgul

P = (512, 1024)


def flip(path, dataset, index, nbytes=100, seed=0):
    """Overwrites `nbytes` bytes in the middle of chunk `index` of `dataset`, in place (the file's structure
    untouched)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(index)
    rng = np.random.default_rng(seed)
    b = bytearray(path.read_bytes())
    start = info.byte_offset + 16  # past the bitshuffle header
    for at in rng.choice(np.arange(start, info.byte_offset + info.size - 4), nbytes, replace=False):
        b[at] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(b))


@pytest.fixture
def made(tmp):
    gain = np.stack([np.full(P, 41.0), np.full(P, -1.44), np.full(P, -0.115)])
    gain.astype("<f8").tofile(tmp / "g.bin")
    with h5py.File(tmp / "ped.h5", "w") as f:
        f["gains"] = np.stack([np.full(P, 3000.0), np.full(P, 14000.0), np.full(P, 15000.0)]).astype(np.float32)
    cal = tmp / "cal.h5"
    morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={tmp / 'g.bin'}")
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal", tmp / "ped.h5")
    morgul("simulate", "-n", 30, "--module-names", "M420", "--pcap", tmp / "c.pcap")
    morgul("replay", tmp / "c.pcap", "--module-names", "M420", "-o", tmp / "raw", "-q", "--frames-per-file", 10)
    return tmp, cal


def test_intact_files_pass(made):
    d, cal = made
    morgul("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "cor")
    for what in (d / "raw", d / "raw_master.h5", d / "raw_data_000002.h5", cal, d / "cor_master.h5"):
        out = morgul("verify", what).stdout
        assert "intact" in out and "damaged: intact" in out or "0 damaged" in out, out
    out = morgul("verify", d / "raw").stdout
    assert "30 frame(s) checked: 0 damaged" in out and "without" not in out
    out = morgul("verify", cal).stdout
    assert "dataset(s) read: 0 damaged" in out and "without a checksum" not in out
    with h5py.File(d / "raw_master.h5", "r") as f:
        crc = f["frames/chunk_crc32c"]
        assert crc.dtype == np.uint32 and crc.shape == (30,) and "CRC-32C" in crc.attrs["description"].decode()
    with h5py.File(cal, "r") as f:
        assert f["M420/gain"].fletcher32 and f["M420/pedestal"].fletcher32


def test_flipped_bytes_in_a_frame(made):
    d, cal = made
    flip(d / "raw_data_000002.h5", "data", 3)  # image 13
    p = morgul("verify", d / "raw", status=LOSS)
    assert "raw_data_000002.h5: frame 3 is damaged: its chunk does not match the CRC-32C" in p.stdout
    assert "30 frame(s) checked: 1 damaged" in p.stdout and "DAMAGED" in p.stdout
    # the other files of the run are intact
    morgul("verify", d / "raw_data_000001.h5")
    # correct and pedestal refuse the frame instead of converting it
    p = morgul("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "x", check=False)
    assert p.returncode == 1 and "frame 13" in p.stdout and "does not match the CRC-32C" in p.stdout
    assert "morgul verify" in p.stdout
    p = morgul("pedestal", "-c", d / "p.h5", "--g0", d / "raw_master.h5", "--module-names", "M420", check=False)
    assert p.returncode == 1 and "does not match the CRC-32C" in p.stdout


def test_flipped_bytes_in_a_corrected_frame(made):
    d, cal = made
    morgul("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "cor", "--frames-per-file", 20)
    flip(d / "cor_data_000002.h5", "entry/data/data", 5)
    p = morgul("verify", d / "cor_master.h5", status=LOSS)
    assert "cor_data_000002.h5: frame 5 is damaged" in p.stdout and "1 damaged" in p.stdout


def test_flipped_bytes_in_a_calibration_chunk(made):
    d, cal = made
    flip(cal, "M420/gain", 1)
    p = morgul("verify", cal, status=LOSS)
    assert "dataset M420/gain is damaged" in p.stdout
    for args in (("calib", "show", cal), ("correct", d / "raw_master.h5", "-c", cal, "--energy", 12.4, "-o", d / "x"),
                 ("replay", d / "c.pcap", "--module-names", "M420", "-o", d / "y", "-c", cal, "--energy", 12.4)):
        p = morgul(*args, check=False)
        assert p.returncode == 1 and "cal.h5 is damaged: gain does not" in p.stdout, p.stdout
    assert not list(d.glob("x_*")) and not list(d.glob("y_*"))


def test_nothing_to_verify(tmp):
    p = morgul("verify", tmp / "nothing", check=False)
    assert p.returncode == 1 and "no such file" in p.stdout
