"""morgul's bitshuffle/LZ4 chunks against the reference HDF5 plugin (Debian's
bitshuffle package): odd sizes (partial last block, leftover elements) and
both element sizes, in both directions."""
import h5py
import numpy as np
import pytest

from conftest import BUILD, run

SIZES = [1, 7, 8, 9, 4095, 4096, 4097, 4100, 2049, 8191, 12345, 524288, 524293]


@pytest.mark.parametrize("es", [2, 4])
@pytest.mark.parametrize("n", SIZES)
def test_plugin_reads_morgul_chunks(tmp, es, n):
    path = tmp / "m.h5"
    run(BUILD / "tests" / "bshuf_h5", "write", path, es, n, n)
    with h5py.File(path, "r") as f:
        assert "32008" in f["data"]._filters
        np.testing.assert_array_equal(f["data"][()], f["raw"][()])


@pytest.mark.parametrize("es", [2, 4])
@pytest.mark.parametrize("n", SIZES)
def test_morgul_reads_plugin_chunks(tmp, es, n):
    path = tmp / "p.h5"
    rng = np.random.default_rng(n)
    dtype = np.uint16 if es == 2 else np.uint32
    shift = rng.integers(0, 8 * es, n).astype(np.uint64)
    data = (rng.integers(0, 2**(8 * es), n, dtype=np.uint64) >> shift).astype(dtype)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=(n,), compression=32008, compression_opts=(0, 2))
        f.create_dataset("raw", data=data)
    out = run(BUILD / "tests" / "bshuf_h5", "read", path)
    assert "equal" in out.stdout


def test_h5dump_reads_morgul_chunks(tmp):
    path = tmp / "m.h5"
    run(BUILD / "tests" / "bshuf_h5", "write", path, 2, 1000, 3)
    a = run("h5dump", "-d", "/data", "-w", "0", "-y", path).stdout
    b = run("h5dump", "-d", "/raw", "-w", "0", "-y", path).stdout
    values = lambda s: s[s.index("DATA {"):]
    assert values(a) == values(b)
