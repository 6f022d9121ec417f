"""The browser view in a real browser: Debian's chromium, headless (SwiftShader), driven by Selenium.

``radseg-map sample --view`` maps the sample scene with random-tiny weights; the test opens the page,
waits until the 3D view shows the map's label colours (pixels counted in screenshots: the 3D view is a
canvas), types a query, and checks that the answer appears on the page and the candidate boxes in the
3D view. The same detector must report "not drawn" for a page whose viewer gets no data (a rerun server
that received only the layout): that is what makes the positive check mean something. The browser's
console must show the viewer's analytics call and remote font refused by the page's policy.

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/setup_env.sh installs them with apt as root;
CI has them). About a minute on 2 cores.
"""

from __future__ import annotations

import colorsys
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from view_cli import start_radseg_map, wait_line

from radseg_core.view.rerun_server import free_ports

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="Debian chromium + chromium-driver not installed (scripts/setup_env.sh installs "
                              "them with apt when run as root)"),
    pytest.mark.slow,
]
CLASSES = ["chair", "table"]  # palette hues 222° and 85°: far from the boxes' magenta (300°)
MAP_PIXELS = 1500  # label-coloured pixels in the 3D view that mean "the map is drawn"
BOX_PIXELS = 150  # new magenta pixels that mean "the boxes are drawn"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1280,800"]


# ------------------------------------------------------------------ screenshot analysis
def hue_mask(png: bytes, hues_deg: list[float], tol: float = 12.0, min_s: float = 0.35,
             min_v: float = 0.2) -> np.ndarray:
    """Pixels whose hue is within ``tol`` degrees of one of ``hues_deg`` and which are coloured enough.
    Hue survives the viewer's sphere shading (it changes brightness), so shaded voxels still count."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV_FULL).astype(np.float32)
    h, s, v = hsv[..., 0] * (360.0 / 256.0), hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    near = np.zeros(h.shape, bool)
    for hue in hues_deg:
        near |= np.abs((h - hue + 180.0) % 360.0 - 180.0) < tol
    return near & (s > min_s) & (v > min_v)


def palette_hues(n_classes: int) -> list[float]:
    from radseg_core.visual import label_palette

    return [colorsys.rgb_to_hsv(*(c / 255.0))[0] * 360.0 for c in label_palette(n_classes + 1)[1:]]


def map_view_box(driver) -> tuple[int, int, int, int]:
    """Screen rectangle of the viewer's 3D view: the left 3/5 of the iframe, below rerun's top bar and
    above its time panel (the layout radseg_core.view.live.send_layout asks for)."""
    r = driver.execute_script("const r = document.getElementById('viewer').getBoundingClientRect();"
                              "return [r.left, r.top, r.width, r.height];")
    x, y, w, h = (int(v) for v in r)
    return x + 10, y + 70, x + int(0.58 * w), y + h - 50


def count(driver, hues: list[float], **kw) -> tuple[int, np.ndarray]:
    png = driver.get_screenshot_as_png()
    x0, y0, x1, y1 = map_view_box(driver)
    mask = hue_mask(png, hues, **kw)[y0:y1, x0:x1]
    return int(mask.sum()), mask


def map_drawn(driver, hues: list[float], timeout: float) -> tuple[bool, int]:
    """(True, pixels) once the 3D view shows at least MAP_PIXELS map-coloured pixels; (False, best) else."""
    best, end = 0, time.monotonic() + timeout
    while True:
        n, _ = count(driver, hues)
        best = max(best, n)
        if n >= MAP_PIXELS:
            return True, n
        if time.monotonic() > end:
            return False, best
        time.sleep(0.5)


def viewer_up(driver, timeout: float = 60.0) -> None:
    """Until the rerun viewer in the iframe shows its canvas (wasm loaded, app started)."""
    end = time.monotonic() + timeout
    js = ("const d = document.getElementById('viewer').contentDocument;"
          "const c = d && d.getElementById('the_canvas_id');"
          "return !!c && c.classList.contains('visible') && c.width > 0;")
    while not driver.execute_script(js):
        assert time.monotonic() < end, "the rerun viewer did not start in the page"
        time.sleep(0.25)
    time.sleep(1.0)  # its first frames


def text_of(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


def wait_text(driver, element_id: str, pattern: str, timeout: float) -> str:
    end = time.monotonic() + timeout
    while not re.search(pattern, text := text_of(driver, element_id)):
        assert time.monotonic() < end, f"#{element_id} never matched {pattern!r}; it says {text!r}"
        time.sleep(0.2)
    return text


def ask(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "ask").click()


# ------------------------------------------------------------------ the processes
def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmptyBackend:
    def status(self) -> dict:
        return {"state": "mapping", "text": "no data"}

    def query(self, text: str) -> tuple[int, dict]:
        return 400, {"ok": False, "error": "no map"}


@pytest.fixture
def empty_page():
    """A page like the real one whose rerun server received the layout and nothing else."""
    pytest.importorskip("rerun")
    import rerun as rr

    from radseg_core.view.live import send_layout
    from radseg_core.view.page import PageServer
    from radseg_core.view.rerun_server import RerunServer

    grpc, web, page_port = free_ports(3)
    server = RerunServer(grpc_port=grpc, web_port=web)
    server.start()
    rec = rr.RecordingStream("radseg-empty")
    rec.connect_grpc(server.grpc_url)
    send_layout(rec)
    page = PageServer(EmptyBackend(), port=page_port, viewer=server.web_address, grpc=server.grpc_address)
    page.start()
    yield page.url
    page.close()
    rec.disconnect()
    server.close()


@pytest.fixture
def driver():
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


# ------------------------------------------------------------------ the test
def test_map_drawn_query_answered_boxes_drawn_and_empty_viewer_not_drawn(driver, empty_page, tmp_path):
    hues = palette_hues(len(CLASSES))
    ports = free_ports(3)
    proc, lines = start_radseg_map("sample", tmp_path / "out", ports, "--classes", ",".join(CLASSES),
                                   "--max-frames", "3", "--resize", "240")  # maps while the empty page is checked
    try:
        # 1. a viewer that gets no data: the detector must say "not drawn", with the viewer running
        driver.get(empty_page)
        viewer_up(driver)
        drawn, pixels = map_drawn(driver, hues, timeout=8.0)
        print(f"empty viewer: {pixels} map-coloured pixels")
        assert not drawn and pixels < MAP_PIXELS // 10, f"{pixels} map-coloured pixels without a map"
        console = [e["message"] for e in driver.get_log("browser")]  # (get_log hands each entry out once)

        # 2. the real page: the map appears (live), the run ends, the page says so
        url = wait_line(proc, lines, r"view at (http://\S+)", timeout=120).group(1)
        assert url == f"http://127.0.0.1:{ports[0]}/"
        driver.get(url)
        viewer_up(driver)
        drawn, pixels = map_drawn(driver, hues, timeout=60.0)
        print(f"radseg-map's viewer: {pixels} map-coloured pixels")
        assert drawn, f"the map was not drawn: {pixels} map-coloured pixels in the 3D view"
        assert text_of(driver, "not-semantic") == "RANDOM WEIGHTS: NOT SEMANTIC"  # random-tiny says so
        wait_text(driver, "status", r"^the run ended: 3 frames, [\d,]+ voxels", timeout=120)
        time.sleep(1.5)  # the final refresh reaches the viewer
        _, before = count(driver, [300.0], tol=15.0, min_s=0.5, min_v=0.4)

        # 3. a query: the answer on the page, the boxes in the 3D view
        ask(driver, "chair")
        answer = wait_text(driver, "answer", r"candidates for 1 query over \d+ voxels", timeout=60)
        assert "'chair': 1: " in answer
        end, new = time.monotonic() + 30, 0
        while new < BOX_PIXELS and time.monotonic() < end:
            time.sleep(0.5)
            _, after = count(driver, [300.0], tol=15.0, min_s=0.5, min_v=0.4)
            new = int((after & ~before).sum())
        print(f"after the query: {new} new magenta pixels (boxes)")
        assert new >= BOX_PIXELS, f"no candidate boxes drawn: {new} new magenta pixels"
        shot = tmp_path / "view.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("RADSEG_VIEW_SCREENSHOT"):  # docs/view.png is made this way
            shutil.copy(shot, os.environ["RADSEG_VIEW_SCREENSHOT"])

        # 4. an error is shown as one; the page's class says so
        ask(driver, "sofa")
        error = wait_text(driver, "answer", r"^error: ", timeout=30)
        assert "queries ['sofa'] are not classes of this map" in error
        assert driver.execute_script("return document.getElementById('answer').className;") == "error"

        # 5. nothing left the machine: the viewer's analytics call and remote font hit our CSP
        console += [e["message"] for e in driver.get_log("browser")]
        blocked = [m for m in console if "Content Security Policy" in m]
        assert any("https://tel.rerun.io/" in m for m in blocked), "the viewer's analytics call was not blocked"
        assert any("fonts.googleapis.com" in m for m in blocked), "the viewer's remote font was not blocked"

        # 6. Ctrl-C ends it, rerun's child included
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(lines)
        assert not any(port_open(p) for p in ports), "a view server outlived radseg-map"
        assert "radseg-map: view stopped" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
