"""The web page, driven in headless Chromium: upload a photo, wait for the answer, take a screenshot."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import API_KEY, CLASSIFY_WORKS, start_server, stop_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's headless Chromium under Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make browser` (installs Debian's chromium package)")
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
        yield browser
        browser.close()


@pytest.mark.slow
def test_upload_shows_boxes(server: str, trained_model: Path, browser, tmp_path: Path) -> None:
    photo = trained_model.parent.parent.parent / "photos" / "gallery_00001.jpg"
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(server + "/")
    page.wait_for_function("document.getElementById('model').options.length > 0")
    # The slider starts at the model's own threshold, fitted on its val split.
    own = json.loads((trained_model / "operating_point.json").read_text())["min_score"]
    assert float(page.input_value("#threshold")) == pytest.approx(own, abs=0.005)
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
    page.close()
    assert screenshot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def classifier_server(classify_run: Path, venv_env: dict, tmp_path_factory: pytest.TempPathFactory):
    """`artdet serve --classifier` with no detector, behind an API key."""
    model = classify_run / "results" / "classify" / "model.joblib"
    log = tmp_path_factory.mktemp("classifier-server") / "serve.log"
    url, process = start_server(None, ["--classifier", str(model)], {**venv_env, "ARTDET_API_KEY": API_KEY}, log)
    yield url
    stop_server(process)


@pytest.mark.slow
def test_classify_mode_names_a_known_work_and_not_an_unseen_painting(
    classifier_server: str, classify_run: Path, browser, tmp_path: Path
) -> None:
    known = sorted((classify_run / "works" / "cathedral").glob("*.jpg"))[0]
    unseen = sorted((classify_run / "works-unseen").rglob("*.jpg"))[0]
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(classifier_server + "/")
    # The key flow: asked for, typed, then the page learns what the server offers.
    page.wait_for_function("document.body.dataset.state === 'key'")
    page.fill("#key", API_KEY)
    page.press("#key", "Enter")
    page.wait_for_function("document.body.dataset.state === 'ready'")
    # No detector: the page opens in Classify mode, without a switch, a model list or a slider, and no error.
    assert page.get_attribute("body", "data-mode") == "classify"
    assert page.inner_text("#status") == ""
    for hidden in ("#modes", "#model", "#threshold", "#list"):
        assert page.locator(hidden).is_hidden(), hidden
    assert f"{CLASSIFY_WORKS} works" in page.inner_text("#answer-note")

    page.set_input_files("#file", str(known))
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=60_000)
    assert page.get_attribute("#answer", "data-label") == "cathedral", page.inner_text("#status")
    assert page.inner_text("#answer") == "cathedral"
    top = page.locator("#top li").all_inner_texts()
    assert len(top) == min(5, CLASSIFY_WORKS) and all("%" in item for item in top)
    assert "inliers" in top[0]
    assert " ms " in page.inner_text("#status")
    assert page.get_attribute("#canvas", "data-boxes") == "0"
    page.screenshot(path=str(tmp_path / "classify_known.png"), full_page=True)

    page.set_input_files("#file", str(unseen))
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=60_000)
    assert page.get_attribute("#answer", "data-label") == "unknown", page.inner_text("#answer")
    assert page.inner_text("#answer") == f"Unknown — not one of the {CLASSIFY_WORKS} works this model knows"
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(tmp_path / "classify_unknown_phone.png"), full_page=True)

    # A refusal of the server (415) is shown in the status line.
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a photo"}])
    page.wait_for_function("document.body.dataset.state === 'error'")
    assert page.inner_text("#status").startswith("Error: not an image")
    assert page_errors == []
    page.close()

    # A server with detectors too offers both modes and opens in Detect; Classify hides the slider.
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.add_init_script(f"sessionStorage.setItem('artdet-key', {json.dumps(API_KEY)})")
    models = [
        {
            "name": "paintings",
            "classes": [{"id": 1, "name": "painting"}],
            "min_score": 0.42,
            "version": "1",
            "artdet_version": "0",
        }
    ]
    page.route("**/v1/models", lambda route: route.fulfill(json=models))
    page.goto(classifier_server + "/")
    page.wait_for_function("document.body.dataset.state === 'ready'")
    assert page.get_attribute("body", "data-mode") == "detect"
    assert page.locator("#modes").is_visible() and page.locator("#threshold").is_visible()
    assert page.input_value("#threshold") == "0.42"
    page.click("#mode-classify-label")
    assert page.get_attribute("body", "data-mode") == "classify"
    assert page.locator("#threshold").is_hidden() and page.locator("#result").is_visible()
    page.screenshot(path=str(tmp_path / "both_modes.png"), full_page=True)
    page.close()
    assert page_errors == []
