"""An HTTP API and a web page for trained detectors (FastAPI + uvicorn).

The tutorial promised a REST API for a phone app that sends a photo of a
painting and gets back what is in it. ``artdet serve MODEL`` answers
``POST /v1/detect`` with JSON detections (class names, scores, pixel boxes and
optionally an annotated image), serves several models by name, refuses bad
uploads with a clear 4xx instead of crashing, and serves a small web page at
``/`` for trying a model from a browser or a phone's camera.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from artdet import __version__
from artdet.deploy.runtime import Detector

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """What one request may send."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 12_000


class BadImage(Exception):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """RGB pixels of an uploaded image, or :class:`BadImage` with the status and reason."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise BadImage(400, "empty body: send an image as multipart field 'image' or as the raw request body")
    if len(data) > limits.max_bytes:
        raise BadImage(413, f"upload of {len(data)} bytes exceeds the limit of {limits.max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage(415, "not an image this server can read (send JPEG, PNG, BMP, GIF, WebP or TIFF)") from None
    width, height = image.size
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise BadImage(
            413,
            f"image of {width}x{height} pixels exceeds the limit of {limits.max_pixels / 1e6:.0f} megapixels "
            f"or {limits.max_side} pixels a side; resize it first",
        )
    try:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(400, f"the image could not be decoded (truncated or corrupt): {exc}") from None


def _model_info(name: str, detector: Detector) -> dict:
    info_path = detector.path / "artdet_model.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {
        "name": name,
        "classes": [{"id": k, "name": v} for k, v in detector.labels.items()],
        "input_size": info.get("input_size"),
        "experiment": info.get("experiment"),
        "version": info.get("checkpoint") or "unknown",
        "path": str(detector.path),
        "artdet_version": __version__,
    }


def create_app(models: dict[str, str | Path], limits: Limits | None = None):
    """The FastAPI application serving ``models`` (name -> exported model folder)."""
    from PIL import Image

    from artdet.deploy.draw import draw_detections

    if not models:
        raise ValueError("no model to serve")
    limits = limits or Limits()
    detectors = {name: Detector(path) for name, path in models.items()}
    default = next(iter(detectors))
    app = FastAPI(
        title="artdet",
        version=__version__,
        description="Object detection with models trained by the artdet workflow.",
    )

    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": message})

    def _pick(name: str | None) -> tuple[str, Detector] | JSONResponse:
        name = name or default
        if name not in detectors:
            return _error(404, f"no model named {name!r}; available: {sorted(detectors)}")
        return name, detectors[name]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("artdet.deploy").joinpath("web/index.html").read_text()

    @app.get("/health", summary="Liveness check")
    def health() -> dict:
        return {"status": "ok", "models": sorted(detectors)}

    @app.get("/v1/models", summary="The models this server serves")
    def list_models() -> list[dict]:
        return [_model_info(name, det) for name, det in detectors.items()]

    @app.get("/v1/model", summary="One model's classes, input size and version")
    def model_info(model: str | None = Query(None, description="model name; default: the first")):
        picked = _pick(model)
        if isinstance(picked, JSONResponse):
            return picked
        return _model_info(*picked)

    @app.post(
        "/v1/detect",
        summary="Detect objects in an image",
        description=(
            "Send the image as multipart form field `image` (or any single file field), or as the raw "
            "request body. Boxes are in pixels of the image as sent (after EXIF rotation)."
        ),
    )
    async def detect(
        request: Request,
        model: str | None = Query(None, description="model name; default: the first"),
        min_score: float = Query(0.3, ge=0.0, le=1.0),
        max_detections: int = Query(100, ge=1, le=1000),
        annotate: bool = Query(False, description="also return the image with boxes drawn, as a JPEG data URL"),
    ):
        picked = _pick(model)
        if isinstance(picked, JSONResponse):
            return picked
        name, detector = picked
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_bytes + 1024 * 1024:
            return _error(413, f"request of {length} bytes exceeds the limit of {limits.max_bytes} bytes")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image") or next((v for v in form.values() if hasattr(v, "read")), None)
            if upload is None or not hasattr(upload, "read"):
                return _error(400, "multipart request without a file field; send the image as field 'image'")
            data = await upload.read()
        else:
            data = await request.body()
        start = time.perf_counter()
        try:
            pixels = decode_upload(data, limits)
        except BadImage as exc:
            return _error(exc.status, str(exc))
        detections = (await run_in_threadpool(detector, pixels, min_score))[:max_detections]
        body = {
            "model": name,
            "width": int(pixels.shape[1]),
            "height": int(pixels.shape[0]),
            "detections": [
                {
                    "class": d.class_name,
                    "class_id": d.class_id,
                    "score": round(d.score, 4),
                    "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), (round(v, 1) for v in d.box), strict=True)),
                }
                for d in detections
            ],
        }
        if annotate:
            buffer = io.BytesIO()
            Image.fromarray(draw_detections(pixels, detections)).save(buffer, format="JPEG", quality=85)
            body["annotated_image"] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        body["milliseconds"] = round((time.perf_counter() - start) * 1000, 1)
        return body

    return app


def parse_models(specs: list[str]) -> dict[str, str]:
    """``["a=path/a", "path/b"]`` -> ``{"a": "path/a", "b": "path/b"}`` (a bare path is named after its folder)."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path = name
            resolved = Path(path).resolve()
            if resolved.suffix == ".tflite":
                name = resolved.stem
            else:
                name = resolved.parent.name if resolved.name == "saved_model" else resolved.name
        if name in models:
            raise ValueError(f"two models are named {name!r}; name them with NAME=PATH")
        models[name] = path
    return models


def serve(specs: list[str], host: str, port: int, limits: Limits) -> None:
    import uvicorn

    app = create_app(parse_models(specs), limits)
    uvicorn.run(app, host=host, port=port, log_level="info")
