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


def run_detector(detector: Detector, images: list[dict], warmup: int = 2) -> tuple[list[Found], list[float]]:
    """Each image's detections, (class_id, score, box in pixels), and its latency in seconds.

    The first ``warmup`` calls are not timed: graph tracing and allocation are not latency.
    """
    for _ in range(warmup):
        detector(images[0]["pixels"])
    latencies, found = [], []
    for image in images:
        start = time.perf_counter()
        detections = detector(image["pixels"])
        latencies.append(time.perf_counter() - start)
        found.append([(d.class_id, d.score, d.box) for d in detections])
    return found, latencies


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
