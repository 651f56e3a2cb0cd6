"""Shared fixtures of the end-to-end tests: where the morgul binary and the
test data are, and helpers to run commands and read files."""
import os
import pathlib
import subprocess

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MORGUL_BUILD", ROOT / "build"))
MORGUL = BUILD / "morgul"
SHARED = ROOT.parent / "shared" / "data"
PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"

# Readers use the standard plugin, never morgul's own filter.
os.environ.setdefault("HDF5_PLUGIN_PATH", PLUGIN_DIR)


def run(*args, check=True, timeout=120, **kw):
    """Runs a command; returns the CompletedProcess (stdout+stderr as text)."""
    p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}")
    return p


def morgul(*args, **kw):
    return run(MORGUL, *args, **kw)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


_port = [52000 + (os.getpid() % 50) * 100]


@pytest.fixture
def port():
    """A fresh block of loopback UDP ports for each test."""
    _port[0] += 8
    return _port[0]


def pattern(module, frame_number):
    """The words `morgul simulate --content pattern` sends for one module
    frame (mirrors mg_sim_pattern_word in include/morgul/simulate.h)."""
    pix = np.arange(512 * 1024, dtype=np.uint64)
    x = (pix + ((frame_number & 0xFF) << 19) + ((module & 0x1F) << 27)) & 0xFFFFFFFF
    return (((x * 2654435761) & 0xFFFFFFFF) >> 16).astype(np.uint16).reshape(512, 1024)


def read_run(prefix):
    """Everything a run wrote, read through the master file with the
    standard plugin."""
    with h5py.File(f"{prefix}_master.h5", "r") as f:
        out = {k: f[f"frames/{k}"][()] for k in f["frames"]}
        out["data"] = f["data"][()]
        out["run"] = {k: int(f[f"run/{k}"][()]) for k in f["run"]}
        out["modules"] = [n.decode() for n in f["detector/module_name"][()]]
    return out


def mask_bits(mask_row):
    """The 128 per-packet flags of one module's packet_mask (16 bytes)."""
    return np.unpackbits(np.asarray(mask_row, dtype=np.uint8), bitorder="little").astype(bool)


class Receiver:
    """`morgul receive` in the background; start() returns once it listens."""

    def __init__(self, *args):
        self.args = [str(MORGUL), "receive", *map(str, args)]
        self.p = None
        self.output = ""

    def start(self):
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in self.p.stdout:
            lines.append(line)
            if line.startswith("receiving on"):
                break
        else:
            raise AssertionError("receiver did not start:\n" + "".join(lines))
        self.output = "".join(lines)
        return self

    def wait(self, timeout=60):
        rest, _ = self.p.communicate(timeout=timeout)
        self.output += rest
        return self.p.returncode
