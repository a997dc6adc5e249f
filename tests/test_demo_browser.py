"""tconvseg-demo in a real headless browser: drop a CamVid image, read the legend and shares; drop a text file, read the refusal.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``; .ci/run installs
them) and selenium (the dev extra). Without them the test FAILS, saying so; set ``TCONVSEG_SKIP_BROWSER_TESTS=1`` to
skip it on purpose on a machine without a browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from tconvseg.tasks.demo import serve
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import train_tiny, write_image
from tests.helpers.scripts import ROOT

# Gradio's queue calls pandas options that pandas 3 deprecates: its noise, not ours.
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"), pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

SKIP_ENV = "TCONVSEG_SKIP_BROWSER_TESTS"
WAIT_S = 30  # the longest any one step may take (page load, one segmentation)


def _browser():
    """A headless Chromium driven by selenium, or a failure that says how to install them (or skip on purpose)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).is_file()), None)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [what for what, found in (("chromium", chromium), ("chromedriver", driver), ("selenium", webdriver)) if not found]
    if missing:
        advice = (f"the browser test of tconvseg-demo needs {', '.join(missing)}: apt-get update && apt-get install -y chromium "
                  f"chromium-driver, and pip install -e '.[dev]' (selenium); or set {SKIP_ENV}=1 to skip it on purpose")
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(advice)
        pytest.fail(advice)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request the page makes, to check it stays local
    return webdriver.Chrome(service=Service(driver), options=options)


def _camvid_image(tmp: Path) -> Path:
    """A real CamVid val image when a copy is at hand ($TCONVSEG_DATA_DIR/CamVid, ../shared/datasets/CamVid), else a synthetic 360x480."""
    candidates = [ROOT.parent / "shared" / "datasets" / "CamVid"]
    if os.environ.get("TCONVSEG_DATA_DIR"):
        candidates.insert(0, Path(os.environ["TCONVSEG_DATA_DIR"]) / "CamVid")
    for root in candidates:
        found = sorted((root / "val").glob("*.png"))[:1]
        if found:
            return found[0]
    return write_image(tmp / "street.png", (360, 480))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(driver, condition, what: str):
    """Poll ``condition(driver)`` until it returns something true, for at most `WAIT_S`; fail naming ``what`` and the page's text."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            value = condition(driver)
        except Exception:  # noqa: BLE001 - the page re-renders while it is read (stale or missing elements): try again
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {WAIT_S} s; the page said:\n{driver.find_element('tag name', 'body').text[:2000]}")


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def test_the_page_segments_a_dropped_image_and_refuses_a_text_file(tmp_path):
    driver = _browser()  # first: a missing browser fails at once, before a model is trained
    page = None
    try:
        ckpt = train_tiny(tmp_path)
        port = _free_port()
        page = serve(compose_cfg("demo", tmp_path, [f"ckpt_path={ckpt}", "data=synthetic", f"port={port}"]), block=False)
        driver.get(f"http://127.0.0.1:{port}/")
        upload = _wait_for(driver, lambda d: d.find_element("css selector", "#tcs-upload input[type=file]"), "the upload field")
        assert "background" in _text(driver, "tcs-shares") and "%" not in _text(driver, "tcs-shares")  # the legend, no shares yet

        image = _camvid_image(tmp_path)
        upload.send_keys(str(image))
        _wait_for(driver, lambda d: "Segmented" in _text(d, "tcs-message"), "the segmentation of " + image.name)
        table = _text(driver, "tcs-shares")
        rows = dict(re.findall(r"^(background|shape\d) ([\d.]+) %$", table, re.MULTILINE))
        assert sorted(rows) == ["background", "shape1", "shape2", "shape3"], table
        assert sum(float(v) for v in rows.values()) == pytest.approx(100.0, abs=0.25)  # one decimal each, rounded
        assert "Segmented 480x360 pixels" in _text(driver, "tcs-message")
        overlay = driver.find_element("css selector", "#tcs-overlay img")
        assert overlay.get_attribute("naturalWidth") == "480" and overlay.get_attribute("naturalHeight") == "360"

        driver.find_element("css selector", "#tcs-upload button[aria-label=Clear]").click()
        _wait_for(driver, lambda d: "Drop an image" in _text(d, "tcs-message"), "the prompt after clearing the file")
        notes = tmp_path / "notes.txt"
        notes.write_text("words, not pixels\n")
        driver.find_element("css selector", "#tcs-upload input[type=file]").send_keys(str(notes))
        refusal = _wait_for(driver, lambda d: d.find_element("css selector", "#tcs-message .tcs-refused").text, "the refusal of notes.txt")
        assert refusal.startswith("notes.txt is not an image this page can read"), refusal
        assert "%" not in _text(driver, "tcs-shares") and not driver.find_elements("css selector", "#tcs-overlay img")
        assert "Traceback" not in driver.find_element("tag name", "body").text

        requested = {json.loads(entry["message"])["message"].get("params", {}).get("request", {}).get("url", "")
                     for entry in driver.get_log("performance")}
        outside = sorted(u for u in requested if u and not u.startswith((f"http://127.0.0.1:{port}/", "data:", "blob:")))
        assert not outside, f"the page fetched from outside this machine: {outside[:5]}"
    finally:
        driver.quit()
        if page is not None:
            page.close()
