"""COCO metrics on hand-made cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from artdet.evaluate import coco_metrics

CLASSES = {1: "portrait", 2: "landscape"}


def _ground_truth() -> list[dict]:
    return [
        {"id": 1, "width": 200, "height": 200, "boxes": [(1, 10, 10, 60, 80), (2, 100, 100, 180, 150)]},
        {"id": 2, "width": 200, "height": 200, "boxes": [(1, 20, 30, 90, 120), (1, 120, 20, 190, 90)]},
    ]


def _perfect() -> list[dict]:
    return [
        {"image_id": image["id"], "class_id": c, "score": 0.9, "box": (x0, y0, x1, y1)}
        for image in _ground_truth()
        for c, x0, y0, x1, y1 in image["boxes"]
    ]


def test_predictions_equal_to_ground_truth_score_one() -> None:
    metrics, precision = coco_metrics(_ground_truth(), _perfect(), CLASSES)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["per_class"] == {"portrait": {"AP50": 1.0, "AP": 1.0}, "landscape": {"AP50": 1.0, "AP": 1.0}}
    assert precision.shape[2] == 2


def test_missing_boxes_lower_recall_in_proportion() -> None:
    predictions = _perfect()[:2]  # image 1 only: 2 of the 4 boxes found
    metrics, _ = coco_metrics(_ground_truth(), predictions, CLASSES)
    assert metrics["AR100"] == pytest.approx(np.mean([1 / 3, 1.0]), abs=1e-3)  # portrait 1/3, landscape 1/1
    assert metrics["per_class"]["landscape"]["AP50"] == pytest.approx(1.0)
    assert metrics["per_class"]["portrait"]["AP50"] == pytest.approx(1 / 3, abs=0.02)


def test_wrong_class_and_shifted_boxes_do_not_count() -> None:
    shifted = [
        {**p, "box": (p["box"][0] + 40, p["box"][1] + 40, p["box"][2] + 40, p["box"][3] + 40)} for p in _perfect()
    ]
    swapped = [{**p, "class_id": 3 - p["class_id"]} for p in _perfect()]
    for predictions in (shifted, swapped):
        metrics, _ = coco_metrics(_ground_truth(), predictions, CLASSES)
        assert metrics["AP50"] < 0.2


def test_no_detections_give_zero_not_a_crash() -> None:
    metrics, _ = coco_metrics(_ground_truth(), [], CLASSES)
    assert metrics["AP50"] == 0.0 and metrics["num_detections"] == 0
