"""``POST /v1/classify``: which known artwork a phone's photo shows, as a FastAPI router.

A router rather than more routes in ``serve.py``, so that ``artdet serve --classifier PATH``
mounts it beside the detectors, and a classifier can also be served alone
(:func:`artdet.deploy.serve.create_classify_app`). Uploads go through
:func:`artdet.deploy.http.process_image`, as the detector's do, so the two endpoints share
their limits, their queue and their answers: 400 empty or corrupt, 401 without the API key, 413 too large,
415 not an image, 422 a bad query parameter, 503 busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request

from artdet import __version__
from artdet.classify.model import Classifier
from artdet.deploy.http import IMAGE_BODY, Gate, Limits, error_responses, process_image


def classify_router(
    model: str | Path | Classifier,
    limits: Limits | None = None,
    gate: Gate | None = None,
    dependencies: Sequence[Any] = (),
) -> APIRouter:
    """Routes ``POST /v1/classify`` and ``GET /v1/classifier`` for one exported classifier.

    ``gate`` is the server's (so classification and detection share one bound on work in
    flight); ``dependencies`` its API-key check.
    """
    classifier = model if isinstance(model, Classifier) else Classifier(model)
    limits = limits or Limits()
    gate = gate or Gate(limits.max_concurrency, limits.max_queue)
    router = APIRouter(tags=["classify"], dependencies=list(dependencies))

    @router.get("/v1/classifier", summary="The classifier's classes and settings", responses=error_responses(401))
    def classifier_info() -> dict:
        return {"classes": classifier.classes, "settings": classifier.settings, "artdet_version": __version__}

    @router.post(
        "/v1/classify",
        summary="Name the artwork in a photo",
        description=(
            "Send the image as multipart form field `image` (or any single file field), or as the raw request "
            "body. Answers `label` (a class, or `unknown` when no known work matches, with the `reason`: "
            "`geometric_check`, `unknown_threshold` or `novelty`) and the `top` classes with scores (0..1, "
            "summing to 1 over all classes) and, with the geometric check, homography inliers."
        ),
        responses=error_responses(400, 401, 413, 415, 422, 503),
        openapi_extra=IMAGE_BODY,
    )
    async def classify(request: Request, top_k: int = Query(3, ge=1, le=100)) -> dict:
        k = min(top_k, len(classifier.classes))
        pixels, prediction = await process_image(request, limits, gate, lambda image: (image, classifier(image, k)))
        return {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), **prediction.as_dict()}

    return router
