"""Run an exported model on the decoded test records, timing each image."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from artdet.deploy.runtime import Detector

Found = list[tuple[int, float, tuple[float, float, float, float]]]


def load_test_images(test_records: list[str | Path]) -> list[dict]:
    """Decoded test images with their ground truth: name, pixels, boxes [(class_id, (x0, y0, x1, y1))]."""
    import tensorflow as tf

    from artdet.data.tfrecord import read_examples

    images = []
    for ex in (ex for path in test_records for ex in read_examples(path)):
        width, height = int(ex["image/width"]), int(ex["image/height"])
        boxes = [
            (int(c), (x0 * width, y0 * height, x1 * width, y1 * height))
            for c, x0, y0, x1, y1 in zip(
                ex["image/object/class/label"],
                ex["image/object/bbox/xmin"],
                ex["image/object/bbox/ymin"],
                ex["image/object/bbox/xmax"],
                ex["image/object/bbox/ymax"],
                strict=True,
            )
        ]
        pixels = tf.io.decode_image(ex["image/encoded"], channels=3).numpy()
        images.append({"name": ex["image/filename"].decode(), "pixels": pixels, "boxes": boxes})
    return images


def attach_originals(images: list[dict], dataset: str | Path, manifests: list[str | Path]) -> None:
    """Give each decoded record image the path of its original photo (``original``), through the manifests.

    A two-stage model names its boxes from the pixels it is given: fed the original photo,
    as a user would feed it, it reads the full resolution the records no longer hold.
    """
    from artdet.data.dataset import read_manifest

    sources = {s.image: s.source for m in manifests for s in read_manifest(m)}
    for image in images:
        if image["name"] not in sources:
            raise ValueError(f"{image['name']}: not in the shards' manifests; rebuild the data stages")
        image["original"] = Path(dataset) / sources[image["name"]]


def _pixels(image: dict) -> tuple[np.ndarray, float, float]:
    """The pixels the model is given (the original photo when the image has one), and the scale to the record's."""
    if "original" not in image:
        return image["pixels"], 1.0, 1.0
    from artdet.classify.dataset import load_rgb

    original = load_rgb(image["original"])
    height, width = image["pixels"].shape[:2]
    return original, width / original.shape[1], height / original.shape[0]


def run_detector(
    detector: Detector, images: list[dict], warmup: int = 2
) -> tuple[list[Found], list[float], list[list[tuple[float, tuple]]]]:
    """Each image's detections, (class_id, score, box in the record's pixels), its latency in seconds,
    and its boxes once each with the detector's score (class names ignored).

    The first ``warmup`` calls are not timed: graph tracing and allocation are not latency.
    An image with an ``original`` photo (:func:`attach_originals`) is detected on it, and the
    boxes are scaled to the record's pixels, where the ground truth is.
    """
    for _ in range(warmup):
        detector(_pixels(images[0])[0])
    latencies, found, boxes = [], [], []
    for image in images:
        pixels, sx, sy = _pixels(image)
        start = time.perf_counter()
        detections = detector(pixels)
        latencies.append(time.perf_counter() - start)
        scaled = [(d, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy)) for d in detections]
        found.append([(d.class_id, d.score, box) for d, box in scaled])
        best: dict[tuple, float] = {}
        for d, box in scaled:
            score = d.score if d.box_score is None else d.box_score
            best[box] = max(best.get(box, 0.0), score)
        boxes.append([(score, box) for box, score in best.items()])
    return found, latencies, boxes


def latency_summary(latencies: list[float]) -> dict:
    """Median, p90 and mean in milliseconds, one image per call."""
    ms = np.asarray(latencies) * 1000
    return {
        "median": round(float(np.median(ms)), 2),
        "p90": round(float(np.percentile(ms, 90)), 2),
        "mean": round(float(ms.mean()), 2),
        "images": len(ms),
        "batch": 1,
    }


def size_bytes(model: Path) -> int:
    """A .tflite file's size, or a SavedModel folder's total."""
    return model.stat().st_size if model.is_file() else sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
