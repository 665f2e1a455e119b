"""The score threshold a model is used at: best F1 of its shown boxes, fitted on val only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artdet.deploy.runtime import UNFITTED_MIN_SCORE, read_operating_point
from artdet.evaluate.operating_point import at_threshold, beside, fit, write

A, B = 1, 2


def _box(x: float) -> tuple:
    return (x, 10.0, x + 40.0, 50.0)


def _val() -> tuple[list, list]:
    """Two images: four true boxes, found at 0.9, 0.8, 0.6 (a false box at 0.7, another at 0.2)."""
    truths = [[(A, _box(0)), (A, _box(100))], [(B, _box(0)), (B, _box(100))]]
    founds = [
        [(A, 0.9, _box(0)), (A, 0.7, _box(300)), (A, 0.6, _box(100))],
        [(B, 0.8, _box(0)), (B, 0.2, _box(200))],
    ]
    return truths, founds


def test_fit_picks_the_best_f1_of_the_shown_boxes() -> None:
    truths, founds = _val()
    point = fit(truths, founds)
    # At 0.6: 3 of 4 boxes found with 1 false box: P 0.75, R 0.75, F1 0.75 (at 0.8: P 1, R 0.5, F1 0.667).
    assert point["fitted"] and point["min_score"] == 0.6
    assert (point["precision"], point["recall"], point["f1"]) == (0.75, 0.75, 0.75)
    assert (point["true_positives"], point["false_positives"], point["missed"]) == (3, 1, 1)
    # What the same threshold gives on these images, counted the same way.
    there = at_threshold(truths, founds, 0.6)
    assert there == {k: v for k, v in point.items() if k in there}


def test_a_val_box_moves_it_and_the_threshold_is_never_inside_a_score_tie() -> None:
    truths, founds = _val()
    # The box at 0.6 is drawn elsewhere by the labeller: it no longer matches; 0.8 is now best.
    moved = [[(A, _box(0)), (A, _box(500))], truths[1]]
    assert fit(moved, founds)["min_score"] == 0.8
    # Two boxes tie at 0.7, one true and one false: a cut between them (F1 1.0) is no threshold;
    # 0.7 keeps both (P 2/3, R 1: F1 0.8).
    tied = [[(A, 0.9, _box(0)), (A, 0.7, _box(100)), (A, 0.7, _box(300))]]
    point = fit([[(A, _box(0)), (A, _box(100))]], tied)
    assert point["min_score"] == 0.7 and point["f1"] == 0.8


def test_each_box_counts_once_with_its_best_class() -> None:
    # The same box as A (0.9) and B (0.5): a person sees one box, A; the B entry is no false box.
    truths = [[(A, _box(0))]]
    point = fit(truths, [[(A, 0.9, _box(0)), (B, 0.5, _box(0))]])
    assert point["precision"] == 1.0 and point["min_score"] == 0.9
    # Named wrongly at its best class: a false box and a miss, at any threshold.
    wrong = at_threshold(truths, [[(B, 0.9, _box(0)), (A, 0.5, _box(0))]], 0.0)
    assert wrong["true_positives"] == 0 and wrong["false_positives"] == 1


def test_without_boxes_the_fallback_is_kept_and_said(tmp_path: Path) -> None:
    point = fit([[(A, _box(0))]], [[]], fallback=UNFITTED_MIN_SCORE)
    assert point == {"min_score": UNFITTED_MIN_SCORE, "fitted": False, "iou": 0.5, "images": 1, "boxes": 1}
    assert read_operating_point(tmp_path) is None
    write({"min_score": 0.42}, beside(tmp_path), "fitted on val")
    assert read_operating_point(tmp_path) == {"min_score": 0.42, "source": "fitted on val"}
    assert json.loads((tmp_path / "operating_point.json").read_text())["min_score"] == 0.42


@pytest.mark.slow
def test_the_exported_model_carries_its_val_threshold_everywhere(workflow_run: Path) -> None:
    from artdet.deploy.runtime import Detector

    results = workflow_run / "results" / "tiny"
    point = json.loads((results / "operating_point.json").read_text())
    assert point["fitted"] and "val-" in point["source"] and "test-" not in point["source"]
    assert 0 < point["min_score"] < 1 and point["f1"] > 0
    # Inside the SavedModel and beside every TFLite file: the model carries it.
    for folder in [results / "saved_model", *sorted(results.glob("tflite_*"))]:
        assert read_operating_point(folder) == point, folder
    assert Detector(results / "saved_model").default_min_score == point["min_score"]
    # The test evaluation draws and counts at it, and reports precision and recall there.
    metrics = json.loads((results / "evaluation" / "saved_model" / "metrics.json").read_text())
    assert metrics["thresholds"]["score"] == point["min_score"] == metrics["at_operating_point"]["min_score"]
    assert metrics["operating_point"] == point
    val = json.loads((results / "val_evaluation" / "metrics.json").read_text())
    assert val["at_operating_point"]["f1"] == point["f1"]


@pytest.mark.slow
def test_a_changed_val_record_refits_the_threshold_a_test_record_cannot(
    workflow_run: Path, venv_env: dict, tmp_path: Path
) -> None:
    import shutil

    from workflow_helpers import planned_jobs

    work = tmp_path / "run"
    shutil.copytree(workflow_run, work, symlinks=True)
    records = work / "results" / "data" / "records"
    # Snakemake reruns on changed content (a touched file with the same checksum is not stale).
    for record in records.glob("test-*.tfrecord"):
        with open(record, "ab") as handle:
            handle.write(b"changed")
    planned = planned_jobs(work, venv_env)
    assert planned.get("evaluate") and "export" not in planned and "train" not in planned, planned
    for record in records.glob("val-*.tfrecord"):
        with open(record, "ab") as handle:
            handle.write(b"changed")
    planned = planned_jobs(work, venv_env)
    assert planned.get("export") == 1, planned
