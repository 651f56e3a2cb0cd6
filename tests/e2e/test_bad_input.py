"""Bad input is counted and reported, never a crash, a hang or a corrupt
file: malformed datagrams, wrong detector type, packet numbers out of range,
wrong header positions, packets on unexpected ports, corrupt and truncated
captures, broken detector descriptions, existing outputs.  Also the other
capture link types and legacy 8246-byte datagrams."""
import socket
import struct

import numpy as np
import pytest

from conftest import LOSS, REFUSED, Receiver, morgul, pattern, read_capture, read_run, run, write_capture


def header(frame=1, packet=0, dtype=3, version=2, row=0, col=0):
    return struct.pack("<QIIQQHHHHIHBB", frame, 100, packet, 0, 0, 0, row, col, 0, 0, 0, dtype, version)


def test_garbage_datagrams_are_counted(tmp, port):
    prefix = tmp / "run"
    rx = Receiver("--port", port, "-o", prefix, "-n", 20, "--idle-timeout", 2).start()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", port)
    body = bytes(8192)
    bad = {
        "rejected_wrong_size": [b"x" * 100, b"", header() + body + b"xy", b"z" * 20000],
        "rejected_wrong_detector_type": [header(dtype=1) + body, header(dtype=4) + body],
        "rejected_wrong_version": [header(version=1) + body],
        "rejected_packet_number": [header(packet=128) + body, header(packet=70000) + body],
        "rejected_position": [header(row=5) + body, header(col=3) + body],
    }
    for dgrams in bad.values():
        for d in dgrams:
            s.sendto(d, dst)
    morgul("simulate", "--port", port, "-n", 20, "--rate", 200)
    # every frame complete, but datagrams were refused: exit status 4
    assert rx.wait() == REFUSED, rx.output
    r = read_run(prefix)
    for name, dgrams in bad.items():
        assert r["run"][name] == len(dgrams), name
    # the good data is untouched
    assert r["run"]["frames_complete"] == 20
    for i in range(20):
        np.testing.assert_array_equal(r["data"][i, 0], pattern(0, i + 1))
    assert "refused 11 datagrams" in rx.output and "every frame complete, but 11 datagrams" in rx.output


def test_implausible_frame_number(tmp, port):
    """Packets with a wild frame number must not wreck the run: 2^40 is a
    number nothing else confirms (stray), 2^62 one no detector reaches
    (refused); a lone packet of the frame before the stream joins it."""
    prefix = tmp / "run"
    # one capture sent in its own time (a lone packet held longer than the frame timeout before the stream
    # begins is rightly stray: sent from here and then a new sender process, a busy machine made it so)
    morgul("simulate", "-n", 20, "--rate", 200, "--first-frame", 2, "--pcap", tmp / "c.pcap")
    recs = read_capture(tmp / "c.pcap")
    t0 = recs[0][0] - 1_000_000
    lone = [header(frame=1) + bytes(8192),  # a genuine-looking first packet
            header(frame=1 << 40) + bytes(8192), header(frame=1 << 62) + bytes(8192)]
    write_capture(tmp / "edited.pcap", [(t0 + i * 1000, 50001, pl) for i, pl in enumerate(lone)] + recs)
    rx = Receiver("--port", port, "-o", prefix, "-n", 20, "--idle-timeout", 2).start()
    morgul("replay", tmp / "edited.pcap", "--send", f"127.0.0.1:{port}", "--realtime")
    assert rx.wait() == LOSS, rx.output  # frame 1 has one packet of 128
    r = read_run(prefix)
    assert r["run"]["rejected_frame_number"] == 1
    assert r["run"]["packets_stray"] == 1
    assert r["frame_number"][:, 0].tolist() == list(range(1, 21))
    assert r["packets_received"][0, 0] == 1 and r["run"]["frames_complete"] == 19


def test_unexpected_ports_in_replay(tmp):
    cap = tmp / "two.pcap"
    morgul("simulate", "--modules", 2, "-n", 5, "--pcap", cap)
    out = morgul("replay", cap, "--modules", 1, "-o", tmp / "r", status=REFUSED).stdout
    r = read_run(tmp / "r")
    assert r["run"]["unexpected_port"] == 5 * 128
    assert r["run"]["frames_complete"] == 5
    assert "on ports not in the detector description: 640" in out


def test_truncated_capture(tmp):
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 6, "--pcap", cap)
    data = cap.read_bytes()
    cut = tmp / "cut.pcap"
    cut.write_bytes(data[:len(data) * 2 // 3 + 1000])
    p = morgul("replay", cut, "--modules", 1, "-o", tmp / "r", check=False)
    assert p.returncode == 1
    assert "truncated" in p.stdout and "records" in p.stdout
    r = read_run(tmp / "r")  # what was read before is written, and the files are valid
    assert 3 <= len(r["index"]) <= 5
    np.testing.assert_array_equal(r["data"][0, 0], pattern(0, 1))


def test_not_a_capture(tmp):
    junk = tmp / "junk.pcap"
    junk.write_bytes(b"this is not a capture" * 100)
    p = morgul("replay", junk, "-o", tmp / "r", check=False)
    assert p.returncode == 1 and "junk.pcap" in p.stdout
    assert not list(tmp.glob("r_*"))


def test_capture_without_detector_packets(tmp):
    cap = tmp / "c.pcap"
    write_pcap(cap, 1, [(50001, b"hello")])
    p = morgul("replay", cap, "-o", tmp / "r", check=False)
    assert p.returncode == 1 and "no JUNGFRAU packets" in p.stdout


@pytest.mark.parametrize("text,line,words", [
    ("[detector]\nname = x\n\n[x-00]\nmodule = M1\nprot = 5\n", 6, "unknown key 'prot'"),
    ("[detector]\nport = 99999\n", 2, "not a UDP port"),
    ("[detector]\n[x-00]\nrow = 0\n", 2, "no 'module"),
    ("name = x\n", 1, "before any [section]"),
    ("[detector]\n[x-00]\nmodule = M1\ninterfaces = 3\n", 4, "must be 1 or 2"),
    ("[detector]\n[x-00]\nmodule = M1\n[x-01]\nmodule = M1\nrow = 1\n", None, "used twice"),
    ("[detector]\n[x-00]\nmodule = M1\nports = 50001, 50002\n", 2, "1 interface(s) but 2 port(s)"),
    ("[detector\n", 1, "section header"),
])
def test_broken_config_names_the_line(tmp, text, line, words):
    ini = tmp / "bad.ini"
    ini.write_text(text)
    p = morgul("receive", "--config", ini, "-o", tmp / "r", check=False)
    assert p.returncode == 2
    assert words in p.stdout
    if line:
        assert f"bad.ini:{line}:" in p.stdout
    assert not list(tmp.glob("r_*"))


def test_existing_output_is_not_overwritten(tmp):
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 3, "--pcap", cap)
    morgul("replay", cap, "-o", tmp / "r")
    before = {p.name: p.read_bytes() for p in tmp.glob("r_*")}
    p = morgul("replay", cap, "-o", tmp / "r", check=False)
    assert p.returncode == 1 and "--overwrite" in p.stdout
    assert {p.name: p.read_bytes() for p in tmp.glob("r_*")} == before
    morgul("replay", cap, "-o", tmp / "r", "--overwrite")
    p = morgul("simulate", "-n", 3, "--pcap", cap, check=False)
    assert p.returncode == 1 and "exists" in p.stdout


def test_bad_options(tmp):
    for args in (["receive"], ["receive", "--modules", "0", "--no-write"], ["simulate", "--drop", "2"],
                 ["simulate", "--rate", "-1"], ["receive", "--no-write", "--cpus", "99"], ["nonsense"]):
        p = morgul(*args, check=False)
        assert p.returncode in (1, 2), args
        assert p.stdout.strip(), args


# ---- other link types and legacy datagrams ----

def read_pcap(path):
    data = path.read_bytes()
    magic, = struct.unpack_from("<I", data)
    assert magic in (0xA1B2C3D4, 0xA1B23C4D)
    off, recs = 24, []
    while off < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, off)
        recs.append((sec, frac, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return magic, recs


def write_records(path, magic, linktype, recs):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype))
        for sec, frac, frame in recs:
            f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)))
            f.write(frame)


def write_pcap(path, linktype, datagrams):
    """Ethernet/IPv4/UDP records from (port, payload) pairs."""
    recs = []
    for port, payload in datagrams:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, bytes([127, 0, 0, 2]),
                         bytes([127, 0, 0, 1]))
        udp = struct.pack("!HHHH", 4000, port, 8 + len(payload), 0)
        recs.append((0, 0, bytes(12) + b"\x08\x00" + ip + udp + payload))
    write_records(path, 0xA1B2C3D4, linktype, recs)


def convert(src, dst, kind):
    magic, recs = read_pcap(src)
    out = []
    for sec, frac, frame in recs:
        ip = frame[14:]
        if kind == "cooked":
            out.append((sec, frac, struct.pack("!HHH8sH", 0, 772, 6, bytes(8), 0x0800) + ip))
        elif kind == "raw":
            out.append((sec, frac, ip))
        elif kind == "vlan":
            out.append((sec, frac, frame[:12] + b"\x81\x00\x00\x05" + frame[12:]))
        elif kind == "legacy":  # 6 empty bytes before the header: IP and UDP lengths grow by 6
            ihl = (ip[0] & 15) * 4
            tot, = struct.unpack_from("!H", ip, 2)
            ulen, = struct.unpack_from("!H", ip, ihl + 4)
            new = bytearray(ip[:ihl + 8] + bytes(6) + ip[ihl + 8:])
            struct.pack_into("!H", new, 2, tot + 6)
            struct.pack_into("!H", new, 10, 0)
            struct.pack_into("!H", new, ihl + 4, ulen + 6)
            out.append((sec, frac, frame[:14] + bytes(new)))
    linktype = {"cooked": 113, "raw": 101, "vlan": 1, "legacy": 1}[kind]
    write_records(dst, magic, linktype, out)


@pytest.mark.parametrize("kind", ["cooked", "raw", "vlan", "legacy"])
def test_link_types_and_legacy_datagrams(tmp, kind):
    cap, conv = tmp / "c.pcap", tmp / f"{kind}.pcap"
    morgul("simulate", "--modules", 2, "--interfaces", 2, "-n", 4, "--pcap", cap)
    convert(cap, conv, kind)
    morgul("replay", conv, "-o", tmp / "r")
    r = read_run(tmp / "r")
    assert r["run"]["frames_complete"] == 4
    for i in range(4):
        for m in range(2):
            np.testing.assert_array_equal(r["data"][i, m], pattern(m, i + 1))


def test_pcapng_capture(tmp):
    """pcapng goes through libpcap (copying packets) instead of the mapping
    (pointing into it): the same frames either way."""
    cap, ng = tmp / "c.pcap", tmp / "c.pcapng"
    morgul("simulate", "--modules", 2, "--interfaces", 2, "-n", 4, "--pcap", cap, "--drop", 0.01, "--seed", 4)
    run("editcap", "-F", "pcapng", cap, ng)
    morgul("replay", cap, "-o", tmp / "a", "--modules", 2, "--interfaces", 2, status=LOSS)
    morgul("replay", ng, "-o", tmp / "b", "--modules", 2, "--interfaces", 2, status=LOSS)
    a, b = read_run(tmp / "a"), read_run(tmp / "b")
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(a["packet_mask"], b["packet_mask"])
    assert a["run"]["packets_lost"] > 0


def test_replay_loops_continue_frame_numbers(tmp):
    cap = tmp / "c.pcap"
    morgul("simulate", "--modules", 2, "-n", 3, "--first-frame", 10, "--pcap", cap)
    morgul("replay", cap, "-o", tmp / "r", "--loops", 3)
    r = read_run(tmp / "r")
    assert r["frame_number"][:, 0].tolist() == list(range(10, 19))
    for i, fn in enumerate(range(10, 19)):
        np.testing.assert_array_equal(r["data"][i, 1], pattern(1, 10 + i % 3))


def test_disk_full_keeps_what_was_written(tmp):
    """A full disk stops the run with a clear error; the frames written
    before it stay readable through a valid master file."""
    small = tmp / "small"
    small.mkdir()
    if run("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", small, check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        cap = tmp / "c.pcap"
        morgul("simulate", "--modules", 2, "-n", 40, "--pcap", cap, "--content", "dark")
        p = morgul("replay", cap, "-o", small / "r", check=False)
        assert p.returncode == 1
        assert "the disk is full" in p.stdout and "are kept" in p.stdout
        r = read_run(small / "r")
        n = len(r["index"])
        assert 0 < n < 40
        assert r["run"]["frames_written"] == n
        assert r["data"].shape == (n, 2, 512, 1024)
        assert ((r["data"] >> 14) == 0).all()  # dark G0 frames, read back intact
        assert not list(small.glob("*reserve*"))
    finally:
        run("umount", small, check=False)


def test_replay_realtime_paces(tmp):
    """--realtime follows the capture's time stamps (simulated at 50 Hz)."""
    import time
    cap = tmp / "c.pcap"
    morgul("simulate", "-n", 20, "--rate", 50, "--pcap", cap)
    t0 = time.monotonic()
    morgul("replay", cap, "--no-write", "--realtime", "-q")
    took = time.monotonic() - t0
    assert 0.35 < took < 3.0  # 19 frame periods of 20 ms, plus start-up


def test_plan_for_a_two_socket_server(tmp):
    """`morgul plan` places each receiver near its NIC on another machine's topology."""
    from conftest import ROOT
    ini = tmp / "det.ini"
    ini.write_text("[detector]\nname = jf1m\n\n[m0]\nmodule = M420\nrow = 0\nbind = enp65s0f0\n\n"
                   "[m1]\nmodule = M418\nrow = 1\nbind = enp1s0f0\n")
    out = morgul("plan", "--config", ini, "--topology", ROOT / "tests" / "data" / "two-socket-2nic.xml",
                 "--workers", 4).stdout
    assert "link 0 NIC enp65s0f0" in out and "link 1 NIC enp1s0f0" in out
    assert "link 0 receiver -> core 8 (NUMA node 1)" in out
    assert "link 1 receiver -> core 0 (NUMA node 0)" in out
    p = morgul("plan", "--topology", tmp / "missing.xml", check=False)
    assert p.returncode == 1 and "cannot load the topology" in p.stdout
