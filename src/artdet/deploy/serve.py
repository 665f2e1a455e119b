"""An HTTP API and a web page for trained detectors (FastAPI + uvicorn).

The tutorial promised a REST API for a phone app that sends a photo of a
painting and gets back what is in it. ``artdet serve MODEL`` answers
``POST /v1/detect`` with JSON detections (class names, scores, pixel boxes and
optionally an annotated image), serves several models by name and a small web
page at ``/`` for trying a model from a browser or a phone's camera.

:func:`create_app` builds the application from routers: the detector routes here (each a
top-level function that finds the served models on ``app.state``) and, with a classifier,
:func:`artdet.deploy.classify_api.classify_router`. What both share (refusals, uploads, the
queue, the request log) is :mod:`artdet.deploy.http`.
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
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from artdet import __version__
from artdet.defaults import default
from artdet.deploy.http import (
    IMAGE_BODY,
    ApiError,
    BadImage,
    Gate,
    RequestLog,
    add_error_handlers,
    decode_upload,
    error_responses,
    key_check,
    process_image,
)
from artdet.deploy.limits import Limits
from artdet.deploy.runtime import Detection, Detector, one_per_box

log = logging.getLogger(__name__)

__all__ = [
    "ApiError",
    "BadImage",
    "Limits",
    "create_app",
    "create_classify_app",
    "decode_upload",
    "process_image",
    "serve",
]


# The shapes of the answers, for the OpenAPI schema (and so for schema-driven clients).
class Box(BaseModel):
    xmin: float
    ymin: float
    xmax: float
    ymax: float


class AlternativeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="another class the model found for this box")
    score: float


class DetectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class", description="the box's best class, from the label map")
    class_id: int
    score: float
    box: Box = Field(description="pixels of the image as sent (after EXIF rotation)")
    alternatives: list[AlternativeOut] = Field(
        default_factory=list, description="the other classes found for this same box, best first"
    )


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
    min_score: float = Field(
        description="the score threshold used when a request names none: fitted on the model's val split "
        "(best F1 of its boxes at IoU 0.5), or detect.unfitted_min_score for a model exported without one"
    )
    version: str
    artdet_version: str


class Health(BaseModel):
    status: str
    models: list[str]


def _model_info(name: str, detector: Detector) -> dict:
    """What a client may know of a model: no server paths."""
    info_path = detector.path / "artdet_model.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {
        "name": name,
        "classes": [{"id": k, "name": v} for k, v in detector.labels.items()],
        "input_size": info.get("input_size"),
        "experiment": info.get("experiment"),
        "min_score": round(detector.default_min_score, 4),
        "version": info.get("checkpoint") or "unknown",
        "artdet_version": __version__,
    }


@dataclass
class Served:
    """The detectors one app serves and the limits and queue they share (kept on ``app.state.served``)."""

    detectors: dict[str, Detector]
    limits: Limits
    gate: Gate

    def pick(self, name: str | None) -> tuple[str, Detector]:
        """The named detector (the first without a name), or 404."""
        name = name or next(iter(self.detectors), None)
        if name is None or name not in self.detectors:
            raise ApiError(404, f"no model named {name!r}; available: {sorted(self.detectors)}")
        return name, self.detectors[name]


def _served(request: Request) -> Served:
    """What the app serves: routes are top-level functions, so they find it on the app, not in a closure."""
    return request.app.state.served


ServedDep = Annotated[Served, Depends(_served)]

# The routes (registered in detect_router). They have no docstrings on purpose: FastAPI would
# publish a route's docstring as its description in /openapi.json.


def page() -> str:
    return resources.files("artdet.deploy").joinpath("web/index.html").read_text()


def health(served: ServedDep) -> dict:
    return {"status": "ok", "models": sorted(served.detectors)}


def list_models(served: ServedDep) -> list[dict]:
    return [_model_info(name, det) for name, det in served.detectors.items()]


def model_info(
    served: ServedDep, model: str | None = Query(None, description="model name; default: the first")
) -> dict:
    return _model_info(*served.pick(model))


def _detect(
    detector: Detector, pixels: np.ndarray, min_score: float, max_detections: int, annotate: bool
) -> tuple[np.ndarray, list[Detection], str | None]:
    """The model and the drawing (in the worker thread that decoded ``pixels``)."""
    from PIL import Image

    from artdet.deploy.draw import draw_detections

    detections = one_per_box(detector(pixels, min_score))[:max_detections]
    if not annotate:
        return pixels, detections, None
    buffer = io.BytesIO()
    Image.fromarray(draw_detections(pixels, detections)).save(buffer, format="JPEG", quality=85)
    return pixels, detections, "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def detection_json(detection: Detection) -> dict[str, Any]:
    """One detection as the JSON of ``POST /v1/detect`` (:class:`DetectionOut`)."""
    return {
        "class": detection.class_name,
        "class_id": detection.class_id,
        "score": round(detection.score, 4),
        "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), (round(v, 1) for v in detection.box), strict=True)),
        "alternatives": [{"class": name, "score": round(score, 4)} for name, score in detection.alternatives],
    }


async def detect(
    request: Request,
    served: ServedDep,
    model: str | None = Query(None, description="model name; default: the first"),
    min_score: float | None = Query(
        default("serve.min_score"),
        ge=0.0,
        le=1.0,
        description="score threshold; default: the model's own, fitted on its val split (min_score in /v1/models)",
    ),
    max_detections: int = Query(100, ge=1, le=1000),
    annotate: bool = Query(False, description="also return the image with boxes drawn, as a JPEG data URL"),
) -> dict:
    name, detector = served.pick(model)
    start = time.perf_counter()
    pixels, detections, annotated = await process_image(
        request,
        served.limits,
        served.gate,
        lambda image: _detect(
            detector, image, detector.default_min_score if min_score is None else min_score, max_detections, annotate
        ),
    )
    return {
        "model": name,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "detections": [detection_json(d) for d in detections],
        "annotated_image": annotated,
        "milliseconds": round((time.perf_counter() - start) * 1000, 1),
    }


def detect_router(secured: list[Any]) -> APIRouter:
    """The page, ``/health`` and the detector routes; ``secured`` is the API-key check of the ``/v1`` ones."""
    router = APIRouter()
    router.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    router.add_api_route(
        "/health",
        health,
        methods=["GET"],
        summary="Liveness check (open without the API key)",
        response_model=Health,
    )
    router.add_api_route(
        "/v1/models",
        list_models,
        methods=["GET"],
        summary="The models this server serves",
        response_model=list[ModelInfo],
        dependencies=secured,
        responses=error_responses(401),
    )
    router.add_api_route(
        "/v1/model",
        model_info,
        methods=["GET"],
        summary="One model's classes, input size and version",
        response_model=ModelInfo,
        dependencies=secured,
        responses=error_responses(401, 404, 422),
    )
    router.add_api_route(
        "/v1/detect",
        detect,
        methods=["POST"],
        summary="Detect objects in an image",
        description=(
            "Send the image as multipart form field `image` (or a single file field), or as the raw "
            "request body. Boxes are in pixels of the image as sent (after EXIF rotation)."
        ),
        response_model=DetectResponse,
        response_model_exclude_none=True,
        dependencies=secured,
        responses=error_responses(400, 401, 404, 413, 415, 422, 503),
        openapi_extra=IMAGE_BODY,
    )
    return router


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

    from artdet.deploy.classify_api import classify_router

    if not models and classifier is None:
        raise ValueError("no model to serve: pass an exported detector, or --classifier")
    limits = limits or Limits()
    gate = Gate(limits.max_concurrency, limits.max_queue)
    secured = key_check(api_key)
    app = FastAPI(
        title="artdet",
        version=__version__,
        description="Object detection with models trained by the artdet workflow. "
        'Every refusal is a 4xx (or a 503 when busy) with a body {"error": "..."}.',
    )
    app.state.served = Served({name: Detector(path) for name, path in models.items()}, limits, gate)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=cors_origins or [],
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(RequestLog)
    add_error_handlers(app)
    app.include_router(detect_router(secured))
    if classifier is not None:
        app.include_router(classify_router(classifier, limits, gate, secured))
    return app


def create_classify_app(model: str | Path, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    """A server with the classifier alone (``uvicorn`` it, or test it with FastAPI's TestClient)."""
    return create_app({}, limits, api_key, classifier=model)


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
