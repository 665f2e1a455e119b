"""What every HTTP router of ``artdet serve`` shares: refusals, uploads, the queue, the log line.

The detector routes (:mod:`artdet.deploy.serve`) and the classifier routes
(:mod:`artdet.deploy.classify_api`) both take an image upload and answer JSON, so both
need the same answers to a bad request: every bad upload ends in a documented 4xx with an
``{"error": ...}`` body (:func:`process_image` is the one place that turns a request into
pixels or a 4xx), the work (decoding, the model, drawing) runs in worker threads so the
event loop keeps answering, and a bounded number of requests may be at work or waiting
(:class:`Gate`); beyond that the answer is 503 with ``Retry-After``, the only 5xx the
server means to send. Kept apart from both routers, so neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from artdet.deploy.limits import Limits

# The request log keeps the logger name it had when the middleware lived in serve.py.
log = logging.getLogger("artdet.deploy.serve")
T = TypeVar("T")

__all__ = [
    "IMAGE_BODY",
    "ApiError",
    "BadImage",
    "Gate",
    "Limits",
    "RequestLog",
    "add_error_handlers",
    "decode_upload",
    "error_responses",
    "key_check",
    "process_image",
    "read_upload",
]

# Pillow's names of the formats the server opens; everything else is a 415, so an upload
# cannot reach the decoders of rarer formats (PSD, EPS, ICO, ...). Phones' JPEGs (MPO) open as JPEG.
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
NOT_AN_IMAGE = "not an image this server can read (send JPEG, PNG, BMP, GIF, WebP or TIFF)"
# How the API key travels (and how the OpenAPI schema describes it); checked by key_check.
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


def key_check(api_key: str | None) -> list[Any]:
    """The route dependencies that demand ``Authorization: Bearer <api_key>`` (none without a key)."""
    if not api_key:
        return []

    async def check_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return [Depends(check_key)]


async def api_error(request: Request, exc: ApiError) -> JSONResponse:
    """An :class:`ApiError` as its status and ``{"error": ...}``."""
    return JSONResponse(status_code=exc.status, content={"error": str(exc)}, headers=exc.headers)


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A query parameter out of range: 422 with the parameters named, in the same ``{"error": ...}`` shape."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'query')}: {e['msg']}" for e in exc.errors())
    return JSONResponse(status_code=422, content={"error": f"bad parameter: {problems}"})


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own refusals (404 of an unknown path, 405) in the same ``{"error": ...}`` shape."""
    return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers)


def add_error_handlers(app: FastAPI) -> None:
    """Make every refusal of ``app`` a ``{"error": ...}`` body."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


# The shape of every refusal, for the OpenAPI schema (and so for schema-driven clients).
class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong and what to do")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that can refuse with ``statuses``, each with its usual causes."""
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
