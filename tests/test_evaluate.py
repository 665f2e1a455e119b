"""COCO metrics on hand-made cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from artdet.evaluate.metrics import coco_metrics

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
    from artdet.evaluate.matching import confusion_matrix

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


def test_image_errors_and_found_share() -> None:
    from artdet.evaluate.matching import found_share, image_errors, iou_matrix

    assert iou_matrix([(0, 0, 10, 10)], [(5, 0, 15, 10), (20, 20, 30, 30)]).round(3).tolist() == [[0.333, 0.0]]
    truth = [(1, (0, 0, 10, 10)), (2, (20, 20, 40, 40))]
    assert image_errors(truth, [(1, 0.9, (0, 0, 10, 10)), (1, 0.9, (20, 20, 40, 40))]) == (1, 1)
    reference = [[(1, 0.9, (0, 0, 10, 10)), (2, 0.6, (20, 20, 40, 40)), (2, 0.05, (50, 50, 60, 60))]]
    other = [[(1, 0.85, (0, 0, 10, 11)), (2, 0.55, (21, 20, 40, 40))]]
    result = found_share(reference, other, min_score=0.1)
    assert (result["reference_detections"], result["matched"], result["share"]) == (2, 2, 1.0)
    other = [[(1, 0.85, (0, 0, 10, 11)), (1, 0.9, (20, 20, 40, 40))]]  # wrong class for the second
    assert found_share(reference, other, min_score=0.1)["share"] == 0.5
    # Every class counts: a second guess on the same painting that the export drops is a miss.
    reference = [[(2, 0.57, (0, 0, 10, 10)), (3, 0.33, (0, 0, 10, 10)), (3, 0.8, (20, 20, 30, 30))]]
    other = [[(2, 0.56, (0, 0, 10, 10)), (3, 0.75, (20, 20, 30, 30))]]
    assert found_share(reference, other, min_score=0.1)["matched"] == 2
    assert found_share(reference, other, min_score=0.5)["share"] == 1.0  # a high threshold cannot see it
    other[0].append((3, 0.07, (0, 1, 10, 10)))  # kept, with a score within the margin
    assert found_share(reference, other, min_score=0.1)["share"] == 1.0


def test_versus_reference_flags_a_loss_beyond_the_tolerance() -> None:
    from artdet.evaluate.metrics import versus_reference

    classes = {1: "duchess", 2: "queen"}
    boxes = [(10 + 40 * i, 10, 40 + 40 * i, 40) for i in range(4)]
    truth = [{"id": i, "width": 200, "height": 60, "boxes": [(1 + i % 2, *b) for b in boxes]} for i in range(1, 6)]
    # The reference hesitates on each box (right class 0.6, wrong one 0.4): AP 1.0.
    reference = [
        [(c, 0.6, b) for c, *b in image["boxes"]] + [(3 - c, 0.4, b) for c, *b in image["boxes"]] for image in truth
    ]
    same = versus_reference(truth, reference, reference, classes)
    assert same["difference"] == {"AP": 0.0, "AP50": 0.0, "AR100": 0.0} and not same["lossy"]
    assert same["warning"] is None and same["found"]["share"] == 1.0
    # One class per box, picked wrongly on every other image: a loss that must be flagged.
    one_class = [[d for d in dets if d[1] == (0.6 if i % 2 else 0.4)] for i, dets in enumerate(reference)]
    lossy = versus_reference(truth, one_class, reference, classes, tolerance=0.02)
    assert lossy["lossy"] and lossy["difference"]["AP50"] < -0.02
    assert lossy["found"]["share"] == 0.5
    assert "AP50" in lossy["warning"] and "tolerance 0.02" in lossy["warning"]
    assert not versus_reference(truth, one_class, reference, classes, tolerance=1.0)["lossy"]
    # A form that scores better is shown too (a gain can hide a loss), without being called lossy.
    better = versus_reference(truth, reference, one_class, classes, tolerance=0.02)
    assert better["differs"] and not better["lossy"] and "gains" in better["warning"], better
    # Compared at the reference's most detections per image: extra low-scoring entries are not counted.
    padded = [dets + [(1, 0.01, (0, 0, 5, 5))] * 20 for dets in one_class]
    assert versus_reference(truth, padded, reference, classes)["difference"] == lossy["difference"]
    assert lossy["max_detections"] == 8


def test_the_written_reference_scores_exactly_as_the_detections_it_came_from(tmp_path) -> None:
    """Near-equal scores on two images: written rounded, the false one would tie and be matched first."""
    import json

    from artdet.evaluate.reports import write_detections

    truth = [
        {"id": 1, "width": 100, "height": 100, "boxes": []},
        {"id": 2, "width": 100, "height": 100, "boxes": [(1, 10, 10, 50, 50)]},
    ]
    found = [[(1, 0.5000012, (60.004, 60.0, 90.0, 90.0))], [(1, 0.5000038, (10.0, 10.003, 50.0, 50.0))]]
    write_detections([{"name": "a.jpg"}, {"name": "b.jpg"}], found, tmp_path / "detections.json")
    rows = {r["image"]: r["detections"] for r in json.loads((tmp_path / "detections.json").read_text())}
    back = [[(c, s, tuple(b)) for c, s, b in rows[name]] for name in ("a.jpg", "b.jpg")]
    assert back == found

    def ap(detections: list) -> float:
        predictions = [
            {"image_id": i, "class_id": c, "score": s, "box": b}
            for i, dets in enumerate(detections, start=1)
            for c, s, b in dets
        ]
        return coco_metrics(truth, predictions, {1: "portrait"})[0]["AP50"]

    assert ap(back) == ap(found) == pytest.approx(1.0)
    rounded = [[(c, round(s, 5), b) for c, s, b in dets] for dets in found]
    assert ap(rounded) < 0.9, "the case must tell rounding from full precision"


def test_evaluation_defaults_match_the_schema() -> None:
    import yaml

    from artdet.defaults import SCHEMA_PATH
    from artdet.evaluate.metrics import EXPORT_TOLERANCE, FOUND_MIN_SCORE

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    evaluation = schema["properties"]["evaluation"]
    assert evaluation["properties"]["export_tolerance"]["default"] == EXPORT_TOLERANCE
    assert evaluation["properties"]["found_min_score"]["default"] == FOUND_MIN_SCORE
    assert evaluation["default"]["export_tolerance"] == EXPORT_TOLERANCE


def test_comparison_table_and_plot(tmp_path) -> None:
    import json

    from artdet.evaluate.compare import compare

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
            metrics["versus_reference"] = {
                "difference": {"AP": -0.03, "AP50": -0.02, "AR100": 0.0},
                "found": {"share": 0.93},
                "warning": "loses 0.030 AP against the SavedModel (tolerance 0.02)",
            }
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
    assert float(table["ssd", "tflite_int8"]["found"]) == 0.93 and table["ssd", "saved_model"]["found"] == ""
    assert float(table["ssd", "tflite_int8"]["dAP"]) == -0.03
    assert "WARNING: ssd / tflite_int8 loses 0.030 AP" in (tmp_path / "results" / "comparison.md").read_text()
    assert "class=lossy" in (tmp_path / "results" / "comparison.html").read_text()
    assert float(table["frcnn", "saved_model"]["latency_ms_median"]) == 400.0
    assert (tmp_path / "results" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "<td>tflite_int8</td>" in (tmp_path / "results" / "comparison.html").read_text()
