"""``POST /v1/classify``: which known artwork a phone's photo shows, as a FastAPI router.

A router rather than more routes in ``serve.py``, so that the detector's server mounts it
with one line (``app.include_router(classify_router(path, limits))``) and a classifier can
also be served alone (:func:`create_classify_app`). Uploads go through the detector's
``decode_upload``, so the two endpoints share their limits and their 4xx answers:
400 empty or corrupt, 413 too large, 415 not an image, 422 a bad query parameter.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from artdet import __version__
from artdet.classify.model import Classifier
from artdet.deploy.serve import BadImage, Limits, decode_upload


async def _upload(request: Request, limits: Limits) -> bytes | JSONResponse:
    """The image bytes of a multipart field or a raw body, or the 4xx answer."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_bytes + 1024 * 1024:
        return JSONResponse(
            status_code=413,
            content={"error": f"request of {length} bytes exceeds the limit of {limits.max_bytes} bytes"},
        )
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("image") or next((v for v in form.values() if hasattr(v, "read")), None)
        if upload is None or not hasattr(upload, "read"):
            return JSONResponse(
                status_code=400,
                content={"error": "multipart request without a file field; send the image as field 'image'"},
            )
        return await upload.read()
    return await request.body()


def classify_router(model: str | Path | Classifier, limits: Limits | None = None) -> APIRouter:
    """Routes ``POST /v1/classify`` and ``GET /v1/classifier`` for one exported classifier."""
    classifier = model if isinstance(model, Classifier) else Classifier(model)
    limits = limits or Limits()
    router = APIRouter(tags=["classify"])

    @router.get("/v1/classifier", summary="The classifier's classes and settings")
    def classifier_info() -> dict:
        return {
            "classes": classifier.classes,
            "settings": classifier.settings,
            "path": str(classifier.path) if classifier.path else None,
            "artdet_version": __version__,
        }

    @router.post(
        "/v1/classify",
        summary="Name the artwork in a photo",
        description=(
            "Send the image as multipart form field `image` (or any single file field), or as the raw request "
            "body. Answers `label` (a class, or `unknown` when no known work matches) and the `top` classes with "
            "scores (0..1, summing to 1 over all classes) and, with the geometric check, homography inliers."
        ),
    )
    async def classify(request: Request, top_k: int = Query(3, ge=1, le=100)):
        data = await _upload(request, limits)
        if isinstance(data, JSONResponse):
            return data
        try:
            pixels = decode_upload(data, limits)
        except BadImage as exc:
            return JSONResponse(status_code=exc.status, content={"error": str(exc)})
        prediction = await run_in_threadpool(classifier, pixels, min(top_k, len(classifier.classes)))
        return {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), **prediction.as_dict()}

    return router


def create_classify_app(model: str | Path, limits: Limits | None = None) -> FastAPI:
    """A server with the classifier alone (``uvicorn`` it, or test it with FastAPI's TestClient)."""
    app = FastAPI(title="artdet classifier", version=__version__)
    app.include_router(classify_router(model, limits))
    return app
