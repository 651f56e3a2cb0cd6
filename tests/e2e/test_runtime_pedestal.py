"""The run-time pedestal: a data run whose pedestal drifted 20 ADU from the
calibration's, with its shutter opening at a known frame, gives that frame
as the onset (auto), the drift back within its statistical error, and
corrected dark frames centred on zero; live receive, replay and offline
correct give the same frames; a run with signal from its first frame is
refused offline and corrected with the calibration's pedestal (said so,
recorded, nothing dropped) inline."""
import h5py
import numpy as np
import pytest

from conftest import SHARED, Receiver, morgul

MOD5 = SHARED / "psi-mod5"
pytestmark = pytest.mark.skipif(not MOD5.is_dir(), reason="../shared/data/psi-mod5 is not beside the project")
GAINMAP = MOD5 / "gainmap_mod5_derived.bin"
RP = "entry/instrument/detector/jungfrau/runtime_pedestal"


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("runped")
    planes = []
    for g in range(3):
        p = np.fromfile(MOD5 / f"mod5_pedeG{g}.bin", np.float32)
        (p + (20 if g == 0 else 0)).astype(np.float32).tofile(d / f"drift{g}.bin")
        planes.append(str(d / f"drift{g}.bin"))
    cal = d / "cal.h5"
    morgul("gainmap", "-c", cal, "--module-names", "M420", "--gainmap", f"M420={GAINMAP}")
    morgul("calib", "import", "-c", cal, "--module", "M420", "--pedestal",
           ",".join(str(MOD5 / f"mod5_pedeG{g}.bin") for g in range(3)), "--rms", str(MOD5 / "mod5_pedeG0_RMS.bin"))
    sim = ["--content", "photons", "--module-names", "M420", "--gainmap", GAINMAP, "--pedestal", ",".join(planes),
           "--noise-file", MOD5 / "mod5_pedeG0_RMS.bin"]
    return d, cal, sim


def capture(d, sim, name, n, shutter, seed=1):
    morgul("simulate", *sim, "-n", n, "--shutter-opens", shutter, "--seed", seed, "--pcap", d / f"{name}.pcap",
           "--overwrite")
    morgul("replay", d / f"{name}.pcap", "-o", d / f"{name}_raw", "--module-names", "M420", "-q", "--overwrite")
    return d / f"{name}.pcap", d / f"{name}_raw_master.h5"


def corrected(prefix):
    with h5py.File(f"{prefix}_master.h5", "r") as f:
        rp = f[RP] if RP in f else None
        rec = {k: rp[k][()] for k in rp} if rp is not None else None
        return f["entry/data/data"][()], rec


@pytest.mark.parametrize("shutter", [7, 25])
def test_auto_finds_the_shutter_opening(drifted, shutter):
    d, cal, sim = drifted
    pcap, raw = capture(d, sim, f"s{shutter}", shutter + 10, shutter, seed=shutter)
    out = morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / f"auto{shutter}", "--type", "float32",
                 "--runtime-pedestal", "auto").stdout
    assert f"{shutter} dark frame(s), signal from frame {shutter} on" in out
    data, rec = corrected(d / f"auto{shutter}")
    assert rec["mode"] == b"auto" and rec["frames"] == shutter and rec["onset"] == shutter
    psi = np.fromfile(MOD5 / "mod5_pedeG0.bin", np.float32).reshape(512, 1024)
    rms = np.fromfile(MOD5 / "mod5_pedeG0_RMS.bin", np.float32).reshape(512, 1024)
    ok = (psi > 0) & (psi < 16000) & (rms > 0)
    shift = rec["M420"][ok] - psi[ok]
    assert abs(np.median(shift) - 20) < 0.5
    # every pixel's run pedestal within its statistical error (+ the simulator's rounding)
    assert (np.abs(shift - 20) <= 5 * rms[ok] / np.sqrt(shutter) + 0.5).mean() > 0.9999
    # the dark frames come out centred on zero; with the calibration's pedestal they do not
    morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / f"plain{shutter}", "--type", "float32")
    plain, none = corrected(d / f"plain{shutter}")
    assert none is None
    dark = data[:shutter][np.isfinite(data[:shutter])]
    dark_plain = plain[:shutter][np.isfinite(plain[:shutter])]
    assert abs(np.median(dark)) < 0.005
    assert abs(np.median(dark_plain) - 20 / (12.4 * 41)) < 0.005  # the drift, in photons (gain ~41 ADU/keV)


def test_inline_equals_offline_and_fixed_n(drifted, port):
    d, cal, sim = drifted
    pcap, raw = capture(d, sim, "inl", 30, 12, seed=3)
    common = ["-c", cal, "--energy", 12.4, "--type", "float32", "--runtime-pedestal", "auto"]
    morgul("correct", raw, *common, "-o", d / "off")
    morgul("replay", pcap, "--module-names", "M420", *common, "-o", d / "rep")
    rx = Receiver("--module-names", "M420", "--port", port, *common, "-o", d / "live", "-n", 30,
                  "--idle-timeout", 3).start()
    morgul("simulate", *sim, "-n", 30, "--shutter-opens", 12, "--seed", 3, "--port", port, "--rate", 200)
    assert rx.wait() == 0, rx.output
    off, a = corrected(d / "off")
    for name in ("rep", "live"):
        data, b = corrected(d / name)
        assert np.array_equal(off, data, equal_nan=True), name
        assert b["frames"] == a["frames"] == 12 and b["onset"] == 12
        assert np.array_equal(a["M420"], b["M420"])
    # fixed N: the first N frames whatever they hold; frames with signal among them are reported
    out = morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "n8", "--runtime-pedestal", 8).stdout
    assert "8 dark frame(s)" in out and "warning" not in out
    assert corrected(d / "n8")[1]["mode"] == b"fixed"
    out = morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "n20", "--runtime-pedestal", 20).stdout
    assert "8 of them show signal (from frame 12)" in out


def test_signal_from_the_first_frame(drifted):
    d, cal, sim = drifted
    pcap, raw = capture(d, sim, "early", 5, 0, seed=4)
    p = morgul("correct", raw, "-c", cal, "--energy", 12.4, "-o", d / "early", "--runtime-pedestal", "auto",
               check=False)
    assert p.returncode == 1 and "first frame already shows signal" in p.stdout
    assert not list(d.glob("early_master*"))
    # inline: the data are not thrown away; the calibration's pedestal is used and the file says so
    p = morgul("replay", pcap, "--module-names", "M420", "-c", cal, "--energy", 12.4, "-o", d / "early_inline",
               "--runtime-pedestal", "auto")
    assert "corrected with the calibration's pedestal" in p.stdout
    data, rec = corrected(d / "early_inline")
    assert data.shape[0] == 5 and rec["mode"].startswith(b"failed")
    p = morgul("replay", pcap, "--module-names", "M420", "-o", d / "x", "--runtime-pedestal", "auto", check=False)
    assert p.returncode == 2 and "calibration" in p.stdout
