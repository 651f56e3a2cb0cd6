"""The image stream of `morgul serve --stream`: a Python consumer (pyzmq,
cbor2, and Debian's bitshuffle for the chunks) gets start, every image and
end in DECTRIS Stream V2 CBOR messages, decodes every image and finds it
equal to the file's; a consumer that does not read makes images count as
not streamed while every frame is still written."""
import threading

import bitshuffle
import pytest
import cbor2
import numpy as np
import zmq

from test_service import Service, check_files, send

DTYPES = {69: "<u2", 77: "<i2", 78: "<i4", 85: "<f4"}


def bslz4(chunk, dtype, count):
    """A chunk in the bitshuffle HDF5 filter's framing: 8-byte size, 4-byte
    block size (big endian), then the LZ4 blocks."""
    total = int.from_bytes(chunk[:8], "big")
    block = int.from_bytes(chunk[8:12], "big")
    es = np.dtype(dtype).itemsize
    assert total == count * es
    return bitshuffle.decompress_lz4(np.frombuffer(chunk[12:], np.uint8), (count,), np.dtype(dtype), block // es)


def decode(msg):
    """A Stream V2 message with its images decompressed into numpy arrays."""
    def hook(decoder, tag):
        if tag.tag == 56500:
            algorithm, es, data = tag.value
            assert algorithm == "bslz4"
            return ("bslz4", es, data)
        if tag.tag in DTYPES:
            return ("typed", DTYPES[tag.tag], tag.value)
        if tag.tag == 70:
            return np.frombuffer(tag.value, "<u4")
        if tag.tag == 40:
            dims, content = tag.value
            if isinstance(content, tuple) and content[0] == "typed":
                _, dtype, inner = content
                n = int(np.prod(dims))
                if isinstance(inner, tuple) and inner[0] == "bslz4":
                    assert inner[1] == np.dtype(dtype).itemsize
                    return bslz4(inner[2], dtype, n).reshape(dims)
                return np.frombuffer(inner, dtype).reshape(dims)
            return np.asarray(content).reshape(dims)
        return tag
    return cbor2.loads(msg, tag_hook=hook)


_consumers = []


@pytest.fixture(autouse=True)
def _close_consumers():
    """Every consumer a test made is closed after it, whatever the test did
    (an open ZeroMQ socket would hang the context's end at garbage collection)."""
    yield
    while _consumers:
        _consumers.pop().close()


class Consumer(threading.Thread):
    def __init__(self, endpoint, rcvhwm=None, read=True, series=1):
        super().__init__(daemon=True)
        self.series = series  # end messages to wait for
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.RCVTIMEO, 100)  # to see `stop` while nothing comes
        self.sock.connect(endpoint)
        self.read = read
        self.messages = []
        self.done = threading.Event()
        self.stop = threading.Event()
        self.closed = False
        _consumers.append(self)

    def run(self):
        while not self.stop.is_set():
            try:
                m = decode(self.sock.recv())
            except zmq.Again:
                continue
            self.messages.append(m)
            if m["type"] == "end" and sum(x["type"] == "end" for x in self.messages) == self.series:
                self.done.set()
                return

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.stop.set()
        if self.is_alive():
            self.join(10)
        self.sock.close(linger=0)
        self.ctx.term()


def test_consumer_gets_every_image(tmp, port):
    s = Service(tmp, port, "--stream", f"tcp://127.0.0.1:{port + 1}").start()
    c = Consumer(f"tcp://127.0.0.1:{port + 1}")
    c.start()
    s.wait_for("the consumer connected", lambda st: st["stream"]["consumers"] == 1)
    status, rec = s.call("POST", "/api/arm", {"name": "streamed", "frames": 40})
    assert status == 200, rec
    send(port, 40, first=7)
    rec = s.wait_run_ended("streamed")
    assert rec["exit_status"] == 0 and rec["stream"] == {"sent": 42, "not_streamed": 0}, rec
    assert c.done.wait(60), f"no end message; got {[m['type'] for m in c.messages]}"
    start, images, end = c.messages[0], c.messages[1:-1], c.messages[-1]
    assert start["type"] == "start" and end["type"] == "end"
    assert start["series_unique_id"] == "streamed" and start["image_size_x"] == 1024
    assert start["image_size_y"] == 1024 and start["number_of_images"] == 40
    assert start["user_data"] == {"format": "raw", "modules": 2}
    assert end["user_data"] == {"images": 40, "not_streamed": 0}
    assert [m["image_id"] for m in images] == list(range(40))
    r = check_files(s.data / "streamed", 2, 7, 40)
    for m in images:
        i = m["image_id"]
        img = m["data"]["default"]
        assert img.shape == (1024, 1024) and img.dtype == np.dtype("<u2")
        np.testing.assert_array_equal(img.reshape(2, 512, 1024), r["data"][i])
        assert m["user_data"]["frame_numbers"] == [7 + i, 7 + i]
        assert m["user_data"]["complete"] is True and m["user_data"]["packets"] == [128, 128]
        assert m["series_unique_id"] == "streamed" and m["real_time"][1] == 10_000_000
        assert m["stop_time"][0] >= m["start_time"][0]
    c.close()


def test_counter_restart_with_auto_streams_two_series(tmp, port):
    """--auto and a counter restart with no pause: the stream ends the first
    run's series and starts the next run's before its first image."""
    s = Service(tmp, port, "--auto", "--auto-idle", 3, "--stream", f"tcp://127.0.0.1:{port + 1}", modules=1).start()
    c = Consumer(f"tcp://127.0.0.1:{port + 1}", series=2)
    c.start()
    s.wait_for("the consumer connected", lambda st: st["stream"]["consumers"] == 1)
    send(port, 20, modules=1, first=500)
    send(port, 15, modules=1, first=1)
    s.wait_run_ended("run_000002")
    assert c.done.wait(60), f"no second end message; got {[m['type'] for m in c.messages]}"
    assert [m["type"] for m in c.messages] == ["start"] + ["image"] * 20 + ["end", "start"] + ["image"] * 15 + ["end"]
    first, second = c.messages[:22], c.messages[22:]
    assert {m["series_unique_id"] for m in first if m["type"] != "end"} == {"run_000001"}
    assert {m["series_unique_id"] for m in second if m["type"] != "end"} == {"run_000002"}
    assert [m["user_data"]["frame_numbers"] for m in first[1:21]] == [[500 + i] for i in range(20)]
    assert [m["user_data"]["frame_numbers"] for m in second[1:16]] == [[1 + i] for i in range(15)]
    r = check_files(s.data / "run_000002", 1, 1, 15)
    for m in second[1:16]:
        np.testing.assert_array_equal(m["data"]["default"].reshape(1, 512, 1024), r["data"][m["image_id"]])
    assert s.get("/api/runs/run_000001")["stream"] == {"sent": 22, "not_streamed": 0}
    c.close()


def test_slow_consumer_never_costs_a_frame(tmp, port):
    """A consumer that takes nothing: the stream's queue fills, the rest is
    counted as not streamed, and every frame is in the files."""
    s = Service(tmp, port, "--stream", f"tcp://127.0.0.1:{port + 1}", modules=1).start()
    c = Consumer(f"tcp://127.0.0.1:{port + 1}", rcvhwm=1, read=False)  # connected, never reads
    s.wait_for("the consumer connected", lambda st: st["stream"]["consumers"] == 1)
    status, rec = s.call("POST", "/api/arm", {"name": "slow", "frames": 400})
    assert status == 200, rec
    send(port, 400, modules=1, rate=1000)  # the queue of 64 fills whatever the rate; none lost on a busy machine
    rec = s.wait_run_ended("slow")
    assert rec["exit_status"] == 0 and rec["counters"]["written"] == 400, rec
    assert rec["stream"]["not_streamed"] > 0, rec
    assert rec["stream"]["sent"] + rec["stream"]["not_streamed"] == 402, rec
    check_files(s.data / "slow", 1, 1, 400)
    metrics = s.call("GET", "/metrics")[1]
    assert f"morgul_stream_not_streamed_total {rec['stream']['not_streamed']}" in metrics
    c.close()


def test_corrected_images_and_pixel_mask(tmp, port):
    """A corrected run: int32 images (typed array tag 78) and the pixel mask
    in the start message, equal to the NXmx file's."""
    import h5py
    from test_metadata import calibration
    cal = calibration(tmp, "cal.h5", "M000,M001")
    s = Service(tmp, port, "--stream", f"tcp://127.0.0.1:{port + 1}").start()
    c = Consumer(f"tcp://127.0.0.1:{port + 1}")
    c.start()
    s.wait_for("the consumer connected", lambda st: st["stream"]["consumers"] == 1)
    status, rec = s.call("POST", "/api/arm", {"name": "corr", "frames": 12, "calibration": str(cal),
                                              "energy_kev": 12.4, "type": "int32"})
    assert status == 200, rec
    send(port, 12)
    rec = s.wait_run_ended("corr")
    assert rec["exit_status"] == 0 and rec["stream"]["not_streamed"] == 0, rec
    assert c.done.wait(60)
    start, images = c.messages[0], c.messages[1:-1]
    assert start["user_data"]["format"] == "corrected" and start["incident_energy"] == 12400.0
    assert start["saturation_value"] == 2**31 - 2 and start["pixel_mask_enabled"] is True
    with h5py.File(s.data / "corr_master.h5") as f:
        data = f["/entry/data/data"][()]
        mask = f["/entry/instrument/detector/pixel_mask"][()]
    np.testing.assert_array_equal(start["pixel_mask"]["default"], mask)
    assert len(images) == 12
    for m in images:
        img = m["data"]["default"]
        assert img.dtype == np.dtype("<i4") and img.shape == data.shape[1:]
        np.testing.assert_array_equal(img, data[m["image_id"]])
    c.close()
