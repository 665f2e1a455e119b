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


def test_size_ranges_are_scored_apart() -> None:
    ground_truth = [
        {
            "id": 1,
            "width": 400,
            "height": 400,
            "boxes": [(1, 0, 0, 20, 20), (1, 100, 100, 160, 160), (2, 200, 200, 380, 380)],
        }
    ]
    everything = [{"image_id": 1, "class_id": c, "score": 0.9, "box": b} for c, *b in ground_truth[0]["boxes"]]
    metrics, _ = coco_metrics(ground_truth, everything, CLASSES)
    assert (metrics["AP_small"], metrics["AP_medium"], metrics["AP_large"]) == (1.0, 1.0, 1.0)
    metrics, _ = coco_metrics(ground_truth, everything[1:], CLASSES)  # the 20x20 box is missed
    assert metrics["AP_small"] == 0.0 and metrics["AP_medium"] == 1.0 and metrics["AP_large"] == 1.0
    assert metrics["AR_small"] == 0.0 and metrics["AR100"] == pytest.approx(0.75)  # portrait 1/2, landscape 1/1


def test_confusion_matrix_on_a_hand_made_case() -> None:
    from artdet.matching import confusion_matrix

    truth = [
        [(1, (0, 0, 10, 10)), (2, (20, 20, 40, 40)), (1, (50, 50, 60, 60))],
        [(2, (0, 0, 30, 30))],
    ]
    found = [
        [
            (1, 0.9, (0, 0, 10, 11)),  # right class
            (1, 0.8, (20, 20, 40, 41)),  # landscape taken for a portrait
            (2, 0.7, (80, 80, 90, 90)),  # nothing there
            (2, 0.2, (50, 50, 60, 60)),  # below the score threshold: does not count, box 3 is missed
        ],
        [(2, 0.95, (1, 1, 30, 30)), (2, 0.9, (0, 0, 29, 30))],  # a duplicate is a false detection
    ]
    matrix = confusion_matrix(truth, found, num_classes=2, iou_threshold=0.5, score_threshold=0.5)
    #                    bg  portrait landscape (predicted)
    expected = np.array(
        [
            [0, 0, 2],  # background: false detections
            [1, 1, 0],  # portrait: one missed, one right
            [0, 1, 1],
        ]
    )  # landscape: one called portrait, one right
    np.testing.assert_array_equal(matrix, expected)


def test_image_errors_and_agreement() -> None:
    from artdet.matching import agreement, image_errors, iou_matrix

    assert iou_matrix([(0, 0, 10, 10)], [(5, 0, 15, 10), (20, 20, 30, 30)]).round(3).tolist() == [[0.333, 0.0]]
    truth = [(1, (0, 0, 10, 10)), (2, (20, 20, 40, 40))]
    assert image_errors(truth, [(1, 0.9, (0, 0, 10, 10)), (1, 0.9, (20, 20, 40, 40))]) == (1, 1)
    reference = [[(1, 0.9, (0, 0, 10, 10)), (2, 0.6, (20, 20, 40, 40)), (2, 0.3, (50, 50, 60, 60))]]
    other = [[(1, 0.85, (0, 0, 10, 11)), (2, 0.45, (21, 20, 40, 40))]]  # 0.45 is within the 0.1 margin
    result = agreement(reference, other, score_threshold=0.5)
    assert (result["reference_detections"], result["matched"], result["agreement"]) == (2, 2, 1.0)
    other = [[(1, 0.85, (0, 0, 10, 11)), (1, 0.9, (20, 20, 40, 40))]]  # wrong class for the second
    assert agreement(reference, other, score_threshold=0.5)["agreement"] == 0.5
    # The SavedModel's second class on the same painting is not asked of a one-class-per-box model...
    reference = [[(2, 0.57, (0, 0, 10, 10)), (3, 0.53, (0, 0, 10, 10)), (3, 0.8, (20, 20, 30, 30))]]
    other = [[(2, 0.56, (0, 0, 10, 10)), (3, 0.75, (20, 20, 30, 30))]]
    result = agreement(reference, other, score_threshold=0.5)
    assert (result["reference_detections"], result["matched"]) == (2, 2)
    # ...but a different top class still counts as a miss, and per-class comparison can be asked for.
    other = [[(3, 0.56, (0, 0, 10, 10)), (3, 0.75, (20, 20, 30, 30))]]
    assert agreement(reference, other, score_threshold=0.5)["matched"] == 1
    assert agreement(reference, other, score_threshold=0.5, single_class=False)["agreement"] == round(2 / 3, 4)


def test_comparison_table_and_plot(tmp_path) -> None:
    import json

    from artdet.compare import compare

    paths = []
    for model, fmt, ap50, ms in (
        ("ssd", "saved_model", 0.9, 50.0),
        ("ssd", "tflite_int8", 0.88, 20.0),
        ("frcnn", "saved_model", 0.95, 400.0),
    ):
        folder = tmp_path / "results" / model / "evaluation" / fmt
        folder.mkdir(parents=True)
        metrics = {
            "AP": ap50 - 0.2,
            "AP50": ap50,
            "AP75": ap50 - 0.1,
            "AR100": 0.7,
            "size_mb": 5.0,
            "latency_ms": {"median": ms, "p90": ms * 1.1},
            "format": fmt,
        }
        if fmt.startswith("tflite"):
            metrics["agreement"] = {"agreement": 0.93}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        paths.append(folder / "metrics.json")
    rows = compare(paths, tmp_path / "results" / "comparison")
    assert [(r["model"], r["format"]) for r in rows] == [
        ("frcnn", "saved_model"),
        ("ssd", "saved_model"),
        ("ssd", "tflite_int8"),
    ]
    import csv

    with open(tmp_path / "results" / "comparison.csv") as handle:
        table = {(r["model"], r["format"]): r for r in csv.DictReader(handle)}
    assert float(table["ssd", "tflite_int8"]["AP50"]) == 0.88
    assert float(table["ssd", "tflite_int8"]["agreement"]) == 0.93 and table["ssd", "saved_model"]["agreement"] == ""
    assert float(table["frcnn", "saved_model"]["latency_ms_median"]) == 400.0
    assert (tmp_path / "results" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "<td>tflite_int8</td>" in (tmp_path / "results" / "comparison.html").read_text()
