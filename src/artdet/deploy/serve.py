"""An HTTP API and a web page for trained detectors (FastAPI + uvicorn).

The tutorial promised a REST API for a phone app that sends a photo of a
painting and gets back what is in it. ``artdet serve MODEL`` answers
``POST /v1/detect`` with JSON detections (class names, scores, pixel boxes and
optionally an annotated image), serves several models by name and a small web
page at ``/`` for trying a model from a browser or a phone's camera.

A server on a network meets uploads that are not what they claim and more
clients than it has cores, so every bad upload ends in a documented 4xx with an
``{"error": ...}`` body (:func:`process_image` is the one place that turns a
request into pixels or a 4xx), the work (decoding, the model, drawing) runs in
worker threads so the event loop keeps answering, and a bounded number of
requests may be at work or waiting (:class:`Gate`); beyond that the answer is
503 with ``Retry-After``, the only 5xx the server means to send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from artdet import __version__
from artdet.deploy.limits import Limits
from artdet.deploy.runtime import Detector

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["ApiError", "BadImage", "Limits", "create_app", "decode_upload", "process_image", "serve"]

# Pillow's names of the formats the server opens; everything else is a 415, so an upload
# cannot reach the decoders of rarer formats (PSD, EPS, ICO, ...). Phones' JPEGs (MPO) open as JPEG.
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
NOT_AN_IMAGE = "not an image this server can read (send JPEG, PNG, BMP, GIF, WebP or TIFF)"
# How the API key travels (and how the OpenAPI schema describes it); checked in create_app.
BEARER = HTTPBearer(auto_error=False, description="the key given to `artdet serve --api-key`")
# Multipart framing (boundaries, part headers) on top of the image itself.
MULTIPART_OVERHEAD = 64 * 1024


class ApiError(Exception):
    """A request the server refuses: ``status`` and a message for the ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


class BadImage(ApiError):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """RGB pixels of an uploaded image, or :class:`BadImage` with the status and reason.

    The size in pixels is read from the header and checked before anything is decoded,
    so a small file that claims a huge image costs nothing. Decoding runs in a worker
    thread (see :func:`process_image`), so any failure of a decoder on a crafted file is a
    400 here, not an error of the server.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise BadImage(400, "empty body: send an image as multipart field 'image' or as the raw request body")
    if len(data) > limits.max_bytes:
        raise BadImage(413, f"upload of {len(data)} bytes exceeds the limit of {limits.max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise BadImage(413, f"image too large to decode safely, a possible decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise BadImage(415, NOT_AN_IMAGE) from None
    except Exception as exc:  # a header the format's parser rejects
        raise BadImage(400, f"the image could not be decoded (truncated or corrupt): {exc}") from None
    width, height = image.size
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise BadImage(
            413,
            f"image of {width}x{height} pixels exceeds the limit of {limits.max_pixels / 1e6:g} megapixels "
            f"or {limits.max_side} pixels a side; resize it first",
        )
    try:
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise BadImage(413, f"image too large to decode safely, a possible decompression bomb: {exc}") from None
    except Exception as exc:
        raise BadImage(400, f"the image could not be decoded (truncated or corrupt): {exc}") from None


async def _read_limited(chunks: AsyncIterator[bytes], limit: int, what: str) -> bytes:
    """The bytes of a request body, read chunk by chunk; 413 as soon as they pass ``limit``.

    With a chunked upload (no ``Content-Length``) this is where the size is enforced:
    the body is never held whole beyond the limit.
    """
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            # Closing the connection stops a client that would otherwise send the rest.
            raise BadImage(413, f"{what} exceeds the limit of {limit} bytes", headers={"Connection": "close"})
    return bytes(data)


async def read_upload(request: Request, limits: Limits) -> bytes:
    """The uploaded file's bytes: multipart field ``image`` (or the only file field), or the raw body."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_bytes + MULTIPART_OVERHEAD:
        raise BadImage(
            413,
            f"request of {length} bytes exceeds the limit of {limits.max_bytes} bytes",
            headers={"Connection": "close"},
        )
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await _read_limited(request.stream(), limits.max_bytes, "upload")
    body = await _read_limited(request.stream(), limits.max_bytes + MULTIPART_OVERHEAD, "request")

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=4, max_fields=16).parse()
    except MultiPartException as exc:
        raise BadImage(400, f"malformed multipart body: {exc.message}") from None
    try:
        files = [value for value in form.values() if not isinstance(value, str)]
        upload = form.get("image")
        if isinstance(upload, str):
            raise BadImage(415, "field 'image' holds text, not a file; " + NOT_AN_IMAGE)
        upload = upload or (files[0] if len(files) == 1 else None)
        if upload is None:
            raise BadImage(400, "multipart request without a file field; send the image as field 'image'")
        return await upload.read()
    finally:
        await form.close()


class Gate:
    """At most ``max_concurrency`` requests at work and ``max_queue`` waiting; a request beyond them: 503.

    Refusing at once (rather than letting requests pile up) keeps memory and latency
    bounded under a burst, and tells the client when to come back.
    """

    def __init__(self, max_concurrency: int, max_queue: int):
        if max_concurrency < 1 or max_queue < 0:
            raise ValueError("max_concurrency must be at least 1 and max_queue at least 0")
        self.capacity = max_concurrency + max_queue
        self.admitted = 0
        self._slots = asyncio.Semaphore(max_concurrency)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[Callable[[], Any]]:
        """Hold a place in the queue; the yielded function is the context that takes a working slot."""
        if self.admitted >= self.capacity:
            raise ApiError(
                503,
                f"server busy: {self.admitted} requests at work or waiting; retry in a second",
                headers={"Retry-After": "1"},
            )
        self.admitted += 1
        try:
            yield lambda: self._slots
        finally:
            self.admitted -= 1


async def process_image(request: Request, limits: Limits, gate: Gate, work: Callable[[np.ndarray], T]) -> T:
    """``work(pixels)`` on the request's image, or a 4xx/503: what every image endpoint shares.

    The upload is read while the request waits in the queue (a slow client holds no
    worker); once a working slot is free, decoding (:func:`decode_upload`, which turns a
    bad upload into :class:`BadImage`) and ``work`` (the model, drawing) run together in one
    worker thread, so the event loop keeps answering and each request costs one thread hop.
    """
    async with gate.admit() as slot:
        data = await read_upload(request, limits)
        async with slot():
            return await run_in_threadpool(lambda: work(decode_upload(data, limits)))


# The shapes of the answers, for the OpenAPI schema (and so for schema-driven clients).
class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong and what to do")


class Box(BaseModel):
    xmin: float
    ymin: float
    xmax: float
    ymax: float


class DetectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="class name from the label map")
    class_id: int
    score: float
    box: Box = Field(description="pixels of the image as sent (after EXIF rotation)")


class DetectResponse(BaseModel):
    model: str
    width: int
    height: int
    detections: list[DetectionOut]
    annotated_image: str | None = Field(None, description="with annotate=true: the image with boxes, a JPEG data URL")
    milliseconds: float = Field(
        description="time spent on this request: reading, waiting for a turn, decoding, the model, drawing"
    )


class ClassOut(BaseModel):
    id: int
    name: str


class ModelInfo(BaseModel):
    name: str
    classes: list[ClassOut]
    input_size: int | list[int] | None = Field(None, description="the model's input: one side, or [height, width]")
    experiment: str | None = None
    version: str
    artdet_version: str


class Health(BaseModel):
    status: str
    models: list[str]


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "empty body, truncated or corrupt image, malformed multipart body",
        401: "missing or wrong API key (only when the server was started with one)",
        404: "no model of that name",
        413: "upload over the byte limit, image over the pixel limit, or a decompression bomb",
        415: "not one of the accepted image formats",
        422: "a query parameter out of range",
        503: "too many requests at work and waiting; retry after the seconds in Retry-After",
    }
    responses: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": described[s]} for s in statuses
    }
    if 503 in responses:
        responses[503]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return responses


_BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the image: multipart field `image`, or the raw body (JPEG, PNG, BMP, GIF, WebP or TIFF)",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
            **{kind: _BINARY for kind in ("image/jpeg", "image/png", "application/octet-stream")},
        },
    }
}


def _model_info(name: str, detector: Detector) -> dict:
    """What a client may know of a model: no server paths."""
    info_path = detector.path / "artdet_model.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {
        "name": name,
        "classes": [{"id": k, "name": v} for k, v in detector.labels.items()],
        "input_size": info.get("input_size"),
        "experiment": info.get("experiment"),
        "version": info.get("checkpoint") or "unknown",
        "artdet_version": __version__,
    }


class RequestLog:
    """ASGI middleware: one log line per request with method, path, status and milliseconds (never the body)."""

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            log.info(
                "%s %s %s%s %d %.1f ms",
                client[0],
                scope["method"],
                scope["path"],
                f"?{query}" if query else "",
                status[0],
                (time.perf_counter() - start) * 1000,
            )


def create_app(
    models: dict[str, str | Path],
    limits: Limits | None = None,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    classifier: str | Path | None = None,
) -> FastAPI:
    """The FastAPI application serving ``models`` (name -> exported model folder).

    With ``classifier`` (an exported ``model.joblib``), also ``POST /v1/classify``
    (:mod:`artdet.deploy.classify_api`), behind the same key, limits and queue.

    With ``api_key``, every ``/v1/*`` request needs ``Authorization: Bearer <key>``;
    ``/health`` and the page stay open. ``cors_origins`` lists the web origins allowed
    to call the API from a browser (none by default: same origin only).
    """
    from fastapi.middleware.cors import CORSMiddleware
    from PIL import Image

    from artdet.deploy.draw import draw_detections

    if not models and classifier is None:
        raise ValueError("no model to serve: pass an exported detector, or --classifier")
    limits = limits or Limits()
    gate = Gate(limits.max_concurrency, limits.max_queue)
    detectors = {name: Detector(path) for name, path in models.items()}
    default = next(iter(detectors), None)

    async def check_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if api_key is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    secured = [Depends(check_key)] if api_key else []
    app = FastAPI(
        title="artdet",
        version=__version__,
        description="Object detection with models trained by the artdet workflow. "
        'Every refusal is a 4xx (or a 503 when busy) with a body {"error": "..."}.',
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins or [],
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(RequestLog)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"error": str(exc)}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'query')}: {e['msg']}" for e in exc.errors())
        return JSONResponse(status_code=422, content={"error": f"bad parameter: {problems}"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers)

    def _pick(name: str | None) -> tuple[str, Detector]:
        name = name or default
        if name is None or name not in detectors:
            raise ApiError(404, f"no model named {name!r}; available: {sorted(detectors)}")
        return name, detectors[name]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("artdet.deploy").joinpath("web/index.html").read_text()

    @app.get("/health", summary="Liveness check (open without the API key)", response_model=Health)
    def health() -> dict:
        return {"status": "ok", "models": sorted(detectors)}

    @app.get(
        "/v1/models",
        summary="The models this server serves",
        response_model=list[ModelInfo],
        dependencies=secured,
        responses=_error_responses(401),
    )
    def list_models() -> list[dict]:
        return [_model_info(name, det) for name, det in detectors.items()]

    @app.get(
        "/v1/model",
        summary="One model's classes, input size and version",
        response_model=ModelInfo,
        dependencies=secured,
        responses=_error_responses(401, 404, 422),
    )
    def model_info(model: str | None = Query(None, description="model name; default: the first")) -> dict:
        return _model_info(*_pick(model))

    def _detect(
        detector: Detector, pixels: np.ndarray, min_score: float, max_detections: int, annotate: bool
    ) -> tuple[np.ndarray, list, str | None]:
        """The model and the drawing (in the worker thread that decoded ``pixels``)."""
        detections = detector(pixels, min_score)[:max_detections]
        if not annotate:
            return pixels, detections, None
        buffer = io.BytesIO()
        Image.fromarray(draw_detections(pixels, detections)).save(buffer, format="JPEG", quality=85)
        return pixels, detections, "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()

    @app.post(
        "/v1/detect",
        summary="Detect objects in an image",
        description=(
            "Send the image as multipart form field `image` (or a single file field), or as the raw "
            "request body. Boxes are in pixels of the image as sent (after EXIF rotation)."
        ),
        response_model=DetectResponse,
        response_model_exclude_none=True,
        dependencies=secured,
        responses=_error_responses(400, 401, 404, 413, 415, 422, 503),
        openapi_extra=IMAGE_BODY,
    )
    async def detect(
        request: Request,
        model: str | None = Query(None, description="model name; default: the first"),
        min_score: float = Query(0.3, ge=0.0, le=1.0),
        max_detections: int = Query(100, ge=1, le=1000),
        annotate: bool = Query(False, description="also return the image with boxes drawn, as a JPEG data URL"),
    ) -> dict:
        name, detector = _pick(model)
        start = time.perf_counter()
        pixels, detections, annotated = await process_image(
            request, limits, gate, lambda image: _detect(detector, image, min_score, max_detections, annotate)
        )
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
            "annotated_image": annotated,
            "milliseconds": round((time.perf_counter() - start) * 1000, 1),
        }
        return body

    if classifier is not None:
        from artdet.deploy.classify_api import classify_router

        app.include_router(classify_router(classifier, limits, gate, secured))
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


def serve(
    specs: list[str],
    host: str,
    port: int,
    limits: Limits,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    classifier: str | Path | None = None,
) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        log.warning("serving on %s without --api-key: anyone who can reach this port can use the API", host)
    app = create_app(parse_models(specs), limits, api_key, cors_origins, classifier)
    # Our RequestLog writes one line per request with its time; uvicorn's own access log would repeat it.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
