"""The HTTP API, started for real on a loopback port."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import statistics
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.slow
def test_detect_multipart_and_raw_body(server: str, trained_model: Path) -> None:
    photo = trained_model.parent.parent.parent / "photos" / "gallery_00001.jpg"
    width, height = Image.open(photo).size
    response = httpx.post(
        server + "/v1/detect",
        params={"min_score": 0.3, "annotate": True},
        files={"image": ("a.jpg", _jpeg(photo), "image/jpeg")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "paintings" and (body["width"], body["height"]) == (width, height)
    assert body["detections"], "the trained model should find the painting"
    for det in body["detections"]:
        assert det["class"] in {"abstract", "landscape", "nocturne", "portrait"} and det["score"] >= 0.3
        assert 0 <= det["box"]["xmin"] < det["box"]["xmax"] <= width
    annotated = base64.b64decode(body["annotated_image"].split(",", 1)[1])
    assert Image.open(io.BytesIO(annotated)).size == (width, height)

    raw = httpx.post(server + "/v1/detect", content=_jpeg(photo), headers={"content-type": "image/jpeg"}, timeout=60)
    assert raw.status_code == 200
    assert [d["class"] for d in raw.json()["detections"]] == [d["class"] for d in body["detections"]]


@pytest.mark.slow
def test_model_info_health_and_openapi(server: str) -> None:
    info = httpx.get(server + "/v1/model").json()
    assert [c["name"] for c in info["classes"]] == ["abstract", "landscape", "nocturne", "portrait"]
    assert info["input_size"] and info["version"].startswith("ckpt-")
    assert httpx.get(server + "/health").json() == {"status": "ok", "models": ["paintings"]}
    assert "/v1/detect" in httpx.get(server + "/openapi.json").json()["paths"]
    assert httpx.get(server + "/v1/model", params={"model": "nope"}).status_code == 404
    assert "<canvas" in httpx.get(server + "/").text


@pytest.mark.slow
def test_bad_inputs_get_clear_4xx(server: str, trained_model: Path, tmp_path: Path) -> None:
    photo = _jpeg(trained_model.parent.parent.parent / "photos" / "gallery_00002.jpg")
    huge = io.BytesIO()
    Image.new("L", (7100, 7100), 128).save(huge, format="PNG")  # 50 megapixels, a few hundred KB
    cases = {
        "text": (b"just some text", "text/plain", 415, "not an image"),
        "truncated": (photo[: len(photo) // 3], "image/jpeg", 400, "truncated or corrupt"),
        "huge": (huge.getvalue(), "image/png", 413, "megapixels"),
        "empty": (b"", "image/jpeg", 400, "empty body"),
        "too many bytes": (b"\xff" * (9 * 1024 * 1024), "image/jpeg", 413, "exceeds the limit"),
    }
    for name, (data, kind, status, message) in cases.items():
        response = httpx.post(server + "/v1/detect", content=data, headers={"content-type": kind}, timeout=60)
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["error"], name
    multipart_text = httpx.post(server + "/v1/detect", files={"image": ("n.txt", b"hello", "text/plain")})
    assert multipart_text.status_code == 415
    assert httpx.post(server + "/v1/detect", params={"min_score": 3}, content=photo).status_code == 422
    assert httpx.get(server + "/health").status_code == 200, "the server must survive bad input"


@pytest.mark.slow
def test_bounded_concurrent_load(server: str, trained_model: Path) -> None:
    photos = sorted((trained_model.parent.parent.parent / "photos").glob("*.jpg"))[:8]
    payloads = [p.read_bytes() for p in photos]

    def one(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        response = httpx.post(
            server + "/v1/detect",
            content=payloads[i % len(payloads)],
            headers={"content-type": "image/jpeg"},
            timeout=120,
        )
        return response.status_code, time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(200)))
    assert [status for status, _ in results] == [200] * 200
    latencies = sorted(seconds for _, seconds in results)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    print(f"\n200 requests, 8 clients: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
