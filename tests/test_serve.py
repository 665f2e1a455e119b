"""The HTTP API, started for real on a loopback port."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from PIL import Image

from conftest import API_KEY


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG of a few hundred bytes whose header claims ``width`` x ``height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 10_000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


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
    # Without min_score, the model's own threshold (fitted on val, listed in /v1/models) applies.
    own = httpx.get(server + "/v1/model").json()["min_score"]
    assert own == pytest.approx(json.loads((trained_model / "operating_point.json").read_text())["min_score"], abs=1e-4)
    assert all(d["score"] >= own for d in raw.json()["detections"])
    at_own = httpx.post(server + "/v1/detect", params={"min_score": own}, content=_jpeg(photo), timeout=60).json()
    assert [d["class"] for d in raw.json()["detections"]] == [d["class"] for d in at_own["detections"]]


@pytest.mark.slow
def test_model_info_health_and_openapi(server: str, trained_model: Path) -> None:
    info = httpx.get(server + "/v1/model").json()
    assert [c["name"] for c in info["classes"]] == ["abstract", "landscape", "nocturne", "portrait"]
    assert info["input_size"] and info["version"].startswith("ckpt-")
    assert httpx.get(server + "/health").json() == {"status": "ok", "models": ["paintings"]}
    missing = httpx.get(server + "/v1/model", params={"model": "nope"})
    assert missing.status_code == 404 and "no model named 'nope'" in missing.json()["error"]
    assert "<canvas" in httpx.get(server + "/").text
    # No server paths in what clients see.
    listed = httpx.get(server + "/v1/models").text
    assert "path" not in httpx.get(server + "/v1/models").json()[0] and str(trained_model) not in listed

    detect = httpx.get(server + "/openapi.json").json()["paths"]["/v1/detect"]["post"]
    body = detect["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert body["image/jpeg"]["schema"]["format"] == "binary"
    for status in ("400", "401", "404", "413", "415", "422", "503"):
        schema = detect["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorBody"), status
    assert "Retry-After" in detect["responses"]["503"]["headers"]


@pytest.mark.slow
def test_bad_inputs_get_clear_4xx(server: str, trained_model: Path, tmp_path: Path) -> None:
    photo = _jpeg(trained_model.parent.parent.parent / "photos" / "gallery_00002.jpg")
    huge = io.BytesIO()
    Image.new("L", (7100, 7100), 128).save(huge, format="PNG")  # 50 megapixels, a few hundred KB
    icon = io.BytesIO()
    Image.new("RGB", (32, 32)).save(icon, format="ICO")  # Pillow reads it, but it is not on the list
    cases = {
        "text": (b"just some text", "text/plain", 415, "not an image"),
        "truncated": (photo[: len(photo) // 3], "image/jpeg", 400, "truncated or corrupt"),
        "huge": (huge.getvalue(), "image/png", 413, "megapixels"),
        "bomb": (_png_claiming(20_000, 20_000), "image/png", 413, "decompression bomb"),
        "icon": (icon.getvalue(), "image/x-icon", 415, "not an image"),
        "empty": (b"", "image/jpeg", 400, "empty body"),
        "too many bytes": (b"\xff" * (9 * 1024 * 1024), "image/jpeg", 413, "exceeds the limit"),
    }
    for name, (data, kind, status, message) in cases.items():
        response = httpx.post(server + "/v1/detect", content=data, headers={"content-type": kind}, timeout=60)
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["error"], name
    multipart_text = httpx.post(server + "/v1/detect", files={"image": ("n.txt", b"hello", "text/plain")})
    assert multipart_text.status_code == 415
    no_file = httpx.post(server + "/v1/detect", files={"a": ("a", b"1"), "b": ("b", b"2")})
    assert no_file.status_code == 400 and "field 'image'" in no_file.json()["error"]
    bad_parameter = httpx.post(server + "/v1/detect", params={"min_score": 3}, content=photo)
    assert bad_parameter.status_code == 422
    assert bad_parameter.json()["error"].startswith("bad parameter: min_score"), bad_parameter.text
    assert httpx.get(server + "/nowhere").json() == {"error": "Not Found"}
    assert httpx.get(server + "/health").status_code == 200, "the server must survive bad input"


@pytest.mark.slow
def test_chunked_upload_is_refused_before_it_ends(server: str) -> None:
    """Without Content-Length the limit (8 MB here) is enforced while reading: 413 before the body ends."""
    address = urlparse(server)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"\xff" * (1 << 20)
        for _ in range(9):  # 9 MB of a body that never ends: the server must not wait for its end
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""
        while b'"}' not in answer:  # the end of the {"error": ...} body
            received = connection.recv(65536)
            assert received, f"the server closed the connection without a whole answer: {answer[:300]!r}"
            answer += received
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:500]
    assert b"exceeds the limit of 8388608 bytes" in rest


@pytest.mark.slow
def test_health_answers_while_a_40_megapixel_upload_is_decoded(server: str) -> None:
    """Decoding runs in a worker thread: the event loop keeps answering meanwhile.

    The upload is a 40-megapixel JPEG cut short at the end: the server decodes nearly all of
    it, then answers 400, so the time the request is in flight is almost all decoding (no model).
    """
    gradient = Image.linear_gradient("L").resize((8000, 5000))
    picture = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))
    big = io.BytesIO()
    picture.save(big, format="JPEG", quality=90, progressive=True)  # slower to decode than baseline JPEG
    whole = big.getvalue()
    result: dict = {}

    def upload() -> None:
        cut = whole[: len(whole) * 97 // 100]
        result["response"] = httpx.post(
            server + "/v1/detect", content=cut, headers={"content-type": "image/jpeg"}, timeout=300
        )

    uploader = threading.Thread(target=upload)
    answered = 0
    with httpx.Client(timeout=60) as client:
        client.get(server + "/health")  # the connection is open before the upload starts
        uploader.start()
        while uploader.is_alive():
            assert client.get(server + "/health").status_code == 200
            answered += uploader.is_alive()  # counted only if the upload was still being handled
            time.sleep(0.01)
    uploader.join()
    response = result["response"]
    assert response.status_code == 400 and "truncated" in response.json()["error"], response.text
    print(f"\n/health answered {answered} times while a 40 MP upload was decoded")
    assert answered >= 5, f"/health answered only {answered} times while a 40 MP image was decoded"

    # The whole picture is exactly at the 40 MP limit: accepted.
    full = httpx.post(server + "/v1/detect", content=whole, headers={"content-type": "image/jpeg"}, timeout=300)
    assert full.status_code == 200, full.text
    assert (full.json()["width"], full.json()["height"]) == (8000, 5000)


@pytest.mark.slow
def test_api_key_cors_and_request_log(guarded_server: tuple[str, Path], trained_model: Path) -> None:
    url, log = guarded_server
    photo = (trained_model.parent.parent.parent / "photos" / "gallery_00003.jpg").read_bytes()
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": API_KEY}):
        for response in (
            httpx.get(url + "/v1/models", headers=headers),
            httpx.post(url + "/v1/detect", content=photo, headers=headers),
        ):
            assert response.status_code == 401, (headers, response.text)
            assert "API key" in response.json()["error"] and response.headers["www-authenticate"] == "Bearer"
    key = {"authorization": f"Bearer {API_KEY}"}
    assert httpx.get(url + "/v1/models", headers=key).status_code == 200
    assert httpx.post(url + "/v1/detect", content=photo, headers=key, timeout=60).status_code == 200
    # /health and the page stay open; the page knows how to ask for the key.
    assert httpx.get(url + "/health").status_code == 200
    assert 'id="key"' in httpx.get(url + "/").text

    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    allowed = httpx.options(url + "/v1/detect", headers={"origin": "http://gallery.example", **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://gallery.example"
    stranger = httpx.options(url + "/v1/detect", headers={"origin": "http://elsewhere.example", **preflight})
    assert "access-control-allow-origin" not in stranger.headers

    lines = log.read_text().splitlines()
    detect_lines = [line for line in lines if "POST /v1/detect " in line]
    assert any(line.endswith(" ms") and " 200 " in line for line in detect_lines), detect_lines
    assert any(" 401 " in line for line in detect_lines)
    assert all(len(line) < 300 for line in detect_lines), "request logs must not carry image data"


@pytest.mark.slow
def test_beyond_the_queue_the_answer_is_503_with_retry_after(guarded_server: tuple[str, Path], trained_model: Path):
    """One request at work and one waiting (the guarded server's limits): of 8 at once, some get 503."""
    url, _ = guarded_server
    photo = (trained_model.parent.parent.parent / "photos" / "gallery_00004.jpg").read_bytes()
    barrier = threading.Barrier(8)

    def one(_: int) -> httpx.Response:
        # The client (and its connection) is ready before the barrier: the 8 requests leave together.
        with httpx.Client(headers={"authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
            barrier.wait()
            return client.post(url + "/v1/detect", content=photo)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) == {200, 503} and statuses.count(200) >= 2, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1" and "busy" in response.json()["error"]


@pytest.mark.slow
def test_load_16_clients_no_server_error(server: str, trained_model: Path) -> None:
    """320 requests from 16 clients on loopback at the default limits: every one answered 200."""
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

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(320)))
    wall = time.perf_counter() - start
    statuses = [status for status, _ in results]
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses == [200] * 320
    latencies = sorted(seconds for _, seconds in results)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * len(latencies)) - 1]
    print(f"\n320 requests, 16 clients: {320 / wall:.1f} req/s, p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    server: str, guarded_server: tuple[str, Path], tmp_path: Path
) -> None:
    """Schemathesis generates requests from the live OpenAPI schema (bounded examples, fixed seed)."""
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    runs = [(server, []), (guarded_server[0], ["-H", f"Authorization: Bearer {API_KEY}"])]
    for url, extra in runs:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                url + "/openapi.json",
                *extra,
                "--checks",
                checks,
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--phases",
                "coverage,fuzzing",
                "--generation-database",
                "none",
                "--request-timeout",
                "60",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
        )
        summary = result.stdout[-3000:]
        print(summary)
        assert result.returncode == 0, summary
        assert "No issues found" in summary and " 4 passed" in summary
