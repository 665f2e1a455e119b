"""The web page, driven in headless Chromium: upload a photo, wait for the boxes, take a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.slow
def test_upload_shows_boxes(server: str, trained_model: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make browser` (installs Debian's chromium package)")
    photo = trained_model.parent.parent.parent / "photos" / "gallery_00001.jpg"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server + "/")
        page.wait_for_function("document.getElementById('model').options.length > 0")
        page.set_input_files("#file", str(photo))
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=60_000)
        shown = int(page.get_attribute("#canvas", "data-boxes"))
        assert shown > 0, page.inner_text("#status")
        items = page.locator("#list li").all_inner_texts()
        assert len(items) == shown and all(":" in item for item in items)
        # The slider hides every box at threshold 1.
        page.locator("#threshold").fill("1")
        assert page.get_attribute("#canvas", "data-boxes") == "0"
        page.locator("#threshold").fill("0.3")
        screenshot = tmp_path / "web_page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.stat().st_size > 10_000
