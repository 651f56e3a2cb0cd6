"""The service's web page in a real browser: Debian's Chromium, headless,
loads / while a run receives and after it ended; the test reads the page's
DOM as the browser left it (state, counters, plots with points, the preview
image decoded, the run list) and keeps a screenshot.  Also the preview PNG
itself, and the page with a token."""
import io
import shutil
import subprocess

import pytest
from PIL import Image

from conftest import MORGUL
from test_service import Service

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (.ci/setup installs it)")


def browser(url, *args):
    """The DOM after the page ran for 4 s of virtual time."""
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000",
                        "--window-size=1300,1000", "--dump-dom", *args, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert p.returncode == 0 and "</html>" in p.stdout, p.stderr[-3000:]
    return p.stdout


def dom_attr(dom, tag_start, attr):
    i = dom.index(tag_start)
    end = dom.index(">", i)
    part = dom[i:end]
    key = f'{attr}="'
    return part[part.index(key) + len(key):].split('"')[0] if key in part else None


def test_page_during_and_after_a_run(tmp, port):
    s = Service(tmp, port).start()
    assert s.call("POST", "/api/arm", {"name": "shown"})[0] == 200
    # a detector sending for a while at 100 Hz: the page loads while the run receives
    sender = subprocess.Popen([str(MORGUL), "simulate", "--modules", "2", "--port", str(port), "-n", "3000",
                               "--rate", "100", "--content", "photons"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        s.wait_for("receiving with images written",
                   lambda st: st["state"] == "receiving" and st["run"]["counters"]["written"] >= 20)
        dom = browser(s.url + "/")
        assert dom_attr(dom, "<body", "data-state") == "receiving", dom[:2000]
        assert int(dom_attr(dom, "<body", "data-updates")) >= 2
        assert int(dom_attr(dom, '<canvas id="plot-rate"', "data-points")) >= 2
        assert int(dom_attr(dom, '<img id="preview"', "data-loaded")) > 0  # the PNG decoded in the browser
        assert 'id="run-name">shown<' in dom
        images = int(dom.split('id="c-images">')[1].split("<")[0].replace(",", ""))
        assert images >= 20
    finally:
        sender.kill()
        sender.wait()
    assert s.call("POST", "/api/disarm")[0] == 200
    shot = tmp / "page.png"
    dom = browser(s.url + "/", f"--screenshot={shot}")
    assert dom_attr(dom, "<body", "data-state") == "idle"
    assert dom_attr(dom, '<table id="runs"', "data-count") == "1"
    assert '<tr data-run="shown">' in dom and "ended" in dom
    img = Image.open(shot)
    assert img.size == (1300, 1000)
    assert len(set(img.convert("RGB").getdata())) > 50  # a page was drawn, not a blank window


def test_preview_png(tmp, port):
    s = Service(tmp, port, modules=1).start()
    status, body = s.call("GET", "/api/preview.png")
    assert status == 404 and "no image yet" in body["error"]
    assert s.call("POST", "/api/arm", {"frames": 10})[0] == 200
    subprocess.run([str(MORGUL), "simulate", "--port", str(port), "-n", "10", "--content", "photons"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s.wait_run_ended("run_000001")
    import urllib.request
    with urllib.request.urlopen(s.url + "/api/preview.png") as r:
        assert r.headers["Content-Type"] == "image/png"
        img = Image.open(io.BytesIO(r.read()))
    # one module (1024 x 512) binned by 2: 512 x 256, with the colour bar beside and a caption below
    assert img.size[0] > 512 and img.size[1] >= 256
    assert len(set(img.convert("RGB").crop((0, 0, 512, 256)).getdata())) > 20


def test_page_with_a_token(tmp, port):
    tok = tmp / "token"
    tok.write_text("page-token-0123456789abcdef\n")
    s = Service(tmp, port, "--token-file", tok, modules=1).start()
    dom = browser(s.url + "/?token=page-token-0123456789abcdef")
    assert int(dom_attr(dom, "<body", "data-updates")) >= 1 and dom_attr(dom, "<body", "data-state") == "idle"
    assert s.call("GET", "/")[0] == 401  # without the token not even the page
