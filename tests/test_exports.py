"""Exported TFLite files keep the SavedModel's accuracy where classes look alike.

On the demo's distinct classes a one-class-per-box phone model scores like the
SavedModel; on look-alike classes a young model hesitates, and every second
guess the export drops costs AP. This runs the real workflow on the look-alike
demo variant, short enough that the model still hesitates, and checks that the
comparison with the SavedModel flags exports that do lose accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import LEARNING_CONFIG

LOOKALIKE_CONFIG = {
    **LEARNING_CONFIG,
    "records": {"shards": 1},
    "export": {"tflite": ["int8"]},  # float32 shares its post-processing; test_detect.py exports both
    "models": {"tiny": {**LEARNING_CONFIG["models"]["tiny"], "train_steps": 160, "validate_every": 0}},
}


# The largest AP or AP50 change of a sound int8 file on this run: 0.035 measured, 0.06 allowed; the
# file calibrated on blank images loses about 0.4.
INT8_SPREAD = 0.06


def _one_class_per_box(detections: list, iou: float = 0.5) -> list:
    """What a post-processing that keeps one class per box returns: the best class of each box."""
    from artdet.evaluate.matching import iou_matrix

    kept: list = []
    for det in sorted(detections, key=lambda d: -d[1]):
        if not kept or iou_matrix([det[2]], [k[2] for k in kept]).max() < iou:
            kept.append(det)
    return kept


@pytest.mark.slow
def test_exports_keep_the_accuracy_and_a_lossy_one_is_flagged(tmp_path: Path, venv_env: dict) -> None:
    from artdet.data.demo import VARIANTS, generate
    from artdet.evaluate.inference import load_test_images
    from artdet.evaluate.metrics import versus_reference
    from workflow_helpers import snakemake

    generate(tmp_path / "photos", count=96, seed=2, width=320, height=240, variant="lookalike")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(LOOKALIKE_CONFIG))
    snakemake(tmp_path, venv_env, "results/tiny/evaluation/tflite_int8/metrics.json")  # and its reference
    evaluation = tmp_path / "results" / "tiny" / "evaluation"
    saved = json.loads((evaluation / "saved_model" / "metrics.json").read_text())
    assert set(saved["per_class"]) == set(VARIANTS["lookalike"])
    assert saved["AP50"] > 0.2, "the model should find the portraits"

    reference = json.loads((evaluation / "saved_model" / "detections.json").read_text())
    second_guesses = sum(
        len(dets) - len(_one_class_per_box(dets))
        for dets in ([d for d in r["detections"] if d[1] >= 0.1] for r in reference)
    )
    assert second_guesses >= 5, "the model should still hesitate between look-alike classes"

    for form in ("tflite_int8",):
        versus = json.loads((evaluation / form / "metrics.json").read_text())["versus_reference"]
        # A young look-alike model on a few test images: int8 moved AP50 by +0.018 on one machine and by
        # -0.035 on another (the config's 0.02 flags the latter, as it should), while a broken export
        # loses most of it (below). The bound tells the two apart on any machine.
        assert min(versus["difference"]["AP50"], versus["difference"]["AP"]) >= -INT8_SPREAD, (form, versus)
        assert versus["found"]["share"] >= 0.95, versus
        # The score head stays float: quantised, a fifth of these scores were distinct and ties
        # moved AP by 0.02 either way between machines.
        detections = json.loads((evaluation / form / "detections.json").read_text())
        scores = [d[1] for r in detections for d in r["detections"] if d[1] >= 0.1]
        assert len(set(scores)) >= 0.9 * len(scores), f"{len(set(scores))} distinct scores in {len(scores)}"

    # The comparison sees what a one-class-per-box export would lose on this set.
    images = load_test_images(sorted((tmp_path / "results" / "data" / "records").glob("test-*.tfrecord")))
    by_name = {r["image"]: [(c, s, tuple(b)) for c, s, b in r["detections"]] for r in reference}
    truth = [
        {
            "id": i,
            "width": im["pixels"].shape[1],
            "height": im["pixels"].shape[0],
            "boxes": [(c, *b) for c, b in im["boxes"]],
        }
        for i, im in enumerate(images, start=1)
    ]
    full = [by_name[im["name"]] for im in images]
    classes = dict(enumerate(sorted(VARIANTS["lookalike"]), start=1))
    reduced = versus_reference(truth, [_one_class_per_box(d) for d in full], full, classes)
    assert reduced["lossy"] and reduced["found"]["share"] < 0.9, reduced

    # A real export made lossy on purpose: int8 calibrated on blank images.
    from artdet.deploy.tflite import export_tflite
    from artdet.evaluate.evaluator import evaluate_model

    results = tmp_path / "results"
    lossy_file = export_tflite(
        results / "tiny" / "pipeline.yaml",
        results / "tiny" / "train",
        results / "data" / "label_map.pbtxt",
        tmp_path / "blank_int8" / "model.tflite",
        "int8",
        calibration=[np.full((192, 192, 3), 128, np.uint8)] * 8,
    )
    records = sorted((results / "data" / "records").glob("test-*.tfrecord"))
    reference_file = evaluation / "saved_model" / "detections.json"
    metrics = evaluate_model(lossy_file, records, tmp_path / "blank", reference=reference_file)
    versus = metrics["versus_reference"]
    assert versus["lossy"] and versus["warning"], versus
    assert min(versus["difference"]["AP"], versus["difference"]["AP50"]) < -2 * INT8_SPREAD, versus
    assert "Warning" in (tmp_path / "blank" / "metrics.html").read_text()
