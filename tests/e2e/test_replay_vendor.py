"""`morgul replay` of the vendor's virtual-detector captures yields exactly
the complete and partial frames their README lists, with the vendor's pixel
pattern (every pixel of packet p holds ADC p+1; gain bits 00 for columns
0-299, 01 for 300-599, 11 for 600-1023) in the right rows."""
import numpy as np
import pytest

from conftest import LOSS, OK, SHARED, mask_bits, morgul, read_run

CAPTURES = SHARED / "sls-virtual"
pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason="../shared/data/sls-virtual is not beside the project")


def vendor_rows(q):
    """The four module rows 4q..4q+3 as the virtual detector fills them: ADC
    q + 1 (with two interfaces the second one's packet p holds 64 + p + 1, so
    module row r always holds r // 4 + 1)."""
    gain = np.zeros(1024, dtype=np.uint16)
    gain[300:600] = 1
    gain[600:] = 3
    return np.tile(((gain << 14) | (q + 1)).astype(np.uint16), (4, 1))


def check_frames(r, expect):
    """expect: list of (frame numbers per module, packets per module);
    image i is the i-th entry: frames of which nothing came keep their place."""
    assert len(r["index"]) == len(expect)
    assert r["index"].tolist() == list(range(len(expect)))
    for i, (fns, packets) in enumerate(expect):
        assert r["frame_number"][i].tolist() == fns
        assert r["packets_received"][i].tolist() == packets
        for m in range(len(fns)):
            bits = mask_bits(r["packet_mask"][i, m])
            assert bits.sum() == packets[m]
            for q in range(128):
                rows = r["data"][i, m, 4 * q:4 * q + 4]
                if bits[q]:
                    np.testing.assert_array_equal(rows, vendor_rows(q), err_msg=f"frame {fns} packet {q}")
                else:
                    assert (rows == 0xFFFF).all()


def test_one_module(tmp):
    out = morgul("replay", CAPTURES / "jf_virtual.pcap", "-o", tmp / "r", status=LOSS).stdout
    r = read_run(tmp / "r")
    # 5, 6, 7: not a packet of them in the capture; written as missing images so that image i is frame 1 + i
    check_frames(r, [([1], [128]), ([2], [128]), ([3], [128]), ([4], [65]), ([5], [0]), ([6], [0]), ([7], [0]),
                     ([8], [63])])
    assert r["run"]["frames_complete"] == 3 and r["run"]["frames_partial"] == 2
    assert r["run"]["frames_missing"] == 3
    assert "missing 3" in out and "DATA LOST" in out


def test_two_interfaces(tmp):
    morgul("replay", CAPTURES / "jf_virtual_2if.pcap", "-o", tmp / "r", status=LOSS)
    r = read_run(tmp / "r")
    check_frames(r, [([8301], [128]), ([8302], [128]), ([8303], [44])])
    # frame 8303: only the first interface (module rows 0-255) sent, 44 packets
    assert mask_bits(r["packet_mask"][2, 0])[:44].all()


def test_two_modules_with_different_frame_numbers(tmp):
    """The second module's counter differs by 18483: its frames are paired
    with the first module's by arrival time (no bunch id or timestamp is set),
    and the summary says so by module name."""
    out = morgul("replay", CAPTURES / "jf_virtual_2mod.pcap", "-o", tmp / "r").stdout
    r = read_run(tmp / "r")
    check_frames(r, [([18484, 1], [128, 128]), ([18485, 2], [128, 128])])
    assert "module  M001: its frame numbers differ from the acquisition's by -18483" in out
    assert "paired by arrival time" in out


def test_explicit_config_and_align_number(tmp):
    """With --align number the two modules' frame numbers cannot be joined:
    the second module's packets are stray, counted, reported by name, not
    mixed in."""
    ini = tmp / "det.ini"
    ini.write_text("[detector]\nname = virt\nport = 50001\n\n[virt-00]\nmodule = M001\nrow = 0\n\n"
                   "[virt-01]\nmodule = M002\nrow = 1\n")
    out = morgul("replay", CAPTURES / "jf_virtual_2mod.pcap", "--config", ini, "--align", "number", "-o",
                 tmp / "r", status=LOSS).stdout
    r = read_run(tmp / "r")
    assert r["modules"] == ["M001", "M002"]
    assert r["run"]["packets_stray"] == 256, out
    assert (r["packets_received"][:, 1] == 0).all()
    assert "module  M002: its frame numbers are not the others'" in out


def test_send_over_udp(tmp, port):
    """--send retransmits the capture; a receiver gets the same frames."""
    from conftest import Receiver
    rx = Receiver("--port", port, "-o", tmp / "r", "--idle-timeout", 1.5).start()
    morgul("replay", CAPTURES / "jf_virtual.pcap", "--send", f"127.0.0.1:{port}")
    assert rx.wait() == LOSS, rx.output
    r = read_run(tmp / "r")
    check_frames(r, [([1], [128]), ([2], [128]), ([3], [128]), ([4], [65]), ([5], [0]), ([6], [0]), ([7], [0]),
                     ([8], [63])])
