"""``artdet evaluate``: score an exported model on the test TFRecords and write everything a user reads.

Evaluating the exported model (the SavedModel or a TFLite file, not the
training checkpoint) checks what users deploy. The steps live beside this
module: :mod:`~artdet.evaluate.inference` runs and times the model,
:mod:`~artdet.evaluate.metrics` scores it, :mod:`~artdet.evaluate.reports`
draws and writes.

The score threshold of the confusion matrix, the per-image errors and the drawn figures is the
model's own (``operating_point.json`` beside it) unless ``score_threshold`` names one;
``at_operating_point`` in metrics.json is the precision, recall and F1 of the boxes a user sees
there. ``fit_operating_point`` (a path; give it the val records) fits that threshold on these
images instead and stores it beside the model and at that path
(:mod:`~artdet.evaluate.operating_point`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from artdet.evaluate.metrics import EXPORT_TOLERANCE, FOUND_MIN_SCORE

log = logging.getLogger(__name__)


def evaluate_model(
    model: str | Path,
    test_records: str | Path | list[str | Path],
    out_dir: str | Path,
    iou_threshold: float = 0.5,
    score_threshold: float | None = None,
    worst: int = 8,
    reference: str | Path | None = None,
    tolerance: float = EXPORT_TOLERANCE,
    found_min_score: float = FOUND_MIN_SCORE,
    originals: str | Path | None = None,
    manifests: list[str | Path] | None = None,
    fit_operating_point: str | Path | None = None,
) -> dict:
    """Evaluate an exported model (SavedModel folder or .tflite file) on the test TFRecords.

    Writes into ``out_dir``: metrics.json (COCO AP/AR by pycocotools, AP50 and
    AP per class, latency median/p90, model size, and, when ``reference`` (the
    SavedModel's detections.json) is given, ``versus_reference``: see
    :func:`~artdet.evaluate.metrics.versus_reference`), per_class.csv,
    precision_recall.png/.csv, confusion_matrix.png/.csv, worst_images.jpg/.json
    (the images with the most missed boxes, predictions and ground truth drawn),
    sample_detections.jpg, detections.json and metrics.html. ``class_free`` in
    metrics.json scores the boxes with their names ignored. ``originals`` (the
    dataset folder) with the shards' ``manifests`` feeds the model each image's
    original photo instead of the record's pixels: a two-stage model names its
    boxes from the full resolution, as it does for a user. The threshold: see the module.
    """
    from artdet.deploy.runtime import Detector
    from artdet.evaluate import inference, reports
    from artdet.evaluate import metrics as scoring
    from artdet.evaluate import operating_point as point

    model, out_dir = Path(model), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test_records = [test_records] if isinstance(test_records, str | Path) else test_records
    detector = Detector(model)
    images = _load(test_records, originals, manifests, empty_ok=fit_operating_point is not None)
    if not images:
        return _unfitted(detector, out_dir, Path(fit_operating_point), test_records)
    found, latencies, boxes = inference.run_detector(detector, images)
    found = scoring.capped(found)
    ground_truth = scoring.ground_truth_of(images)
    truths = [im["boxes"] for im in images]
    if fit_operating_point is not None:
        _fit(detector, truths, found, iou_threshold, Path(fit_operating_point), test_records)
    if score_threshold is None:
        score_threshold = detector.default_min_score
    metrics, matrix, errors = _score(
        images, found, detector.labels, ground_truth, out_dir, iou_threshold, score_threshold
    )
    _draw(images, found, errors, detector.labels, out_dir, score_threshold, worst)
    metrics.update(
        {
            "model_path": str(model),
            "format": "tflite" if model.suffix == ".tflite" else "saved_model",
            "size_mb": round(inference.size_bytes(model) / 1e6, 2),
            "latency_ms": inference.latency_summary(latencies),
            "thresholds": {"iou": iou_threshold, "score": score_threshold},
            "confusion_matrix": {
                "labels": ["background", *(detector.labels[k] for k in sorted(detector.labels))],
                "counts": matrix.tolist(),
            },
            "operating_point": detector.operating_point,
            "at_operating_point": point.at_threshold(truths, found, score_threshold, iou_threshold),
            "class_free": scoring.class_free_metrics(ground_truth, boxes),
            "two_stage": detector.namer is not None,
            "missed_boxes": int(sum(e[0] for e in errors)),
            "false_detections": int(sum(e[1] for e in errors)),
        }
    )
    if reference is not None:
        comparison = _versus(reference, images, ground_truth, found, detector.labels, tolerance, found_min_score)
        metrics["versus_reference"] = {"reference": str(reference), **comparison}
        if comparison["warning"]:
            log.warning("%s %s", model, comparison["warning"])
    metrics.update(_model_info(model))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "metrics.html").write_text(reports.metrics_html(metrics, out_dir / "per_class.csv"))
    return metrics


def _load(records: list, originals, manifests, empty_ok: bool) -> list[dict]:
    """The records' images with their ground truth (and original photos); none is an error unless ``empty_ok``."""
    from artdet.evaluate import inference

    images = inference.load_test_images(records)
    if not images and not empty_ok:
        raise ValueError(f"no images in the records {', '.join(map(str, records))}")
    if images and originals is not None:
        inference.attach_originals(images, originals, manifests or [])
    return images


def _model_info(model: Path) -> dict:
    """``model``: what artdet_model.json beside an exported model says of it ({} without one)."""
    info_path = (model.parent if model.is_file() else model) / "artdet_model.json"
    return {"model": json.loads(info_path.read_text())} if info_path.exists() else {}


def _fit(detector, truths, found, iou: float, out: Path, records: list) -> None:
    """The model's score threshold fitted on these images (the val split), stored beside it and at ``out``."""
    from artdet.evaluate import operating_point as point

    fitted = point.fit(truths, found, iou, detector.default_min_score)
    source = f"fitted on {len(truths)} images of {', '.join(Path(r).name for r in records)}"
    for path in (point.beside(detector.path), out):
        point.write(fitted, path, source)
    detector.operating_point, detector.default_min_score = {**fitted, "source": source}, fitted["min_score"]
    log.info(
        "operating point | min_score %.3f: precision %.3f, recall %.3f, F1 %.3f at IoU %.2f (%s)",
        fitted["min_score"],
        fitted.get("precision", 0),
        fitted.get("recall", 0),
        fitted.get("f1", 0),
        iou,
        source,
    )


def _unfitted(detector, out_dir: Path, out: Path, records: list) -> dict:
    """No image to fit on (no val split): the model keeps ``detect.unfitted_min_score``, and says so."""
    from artdet.evaluate import operating_point as point

    unfitted = {"min_score": detector.default_min_score, "fitted": False, "images": 0}
    source = f"not fitted: no images in {', '.join(Path(r).name for r in records)} (no val split)"
    for path in (point.beside(detector.path), out):
        point.write(unfitted, path, source)
    log.warning("operating point | %s; min_score stays %.2f", source, unfitted["min_score"])
    metrics = {"images": 0, "operating_point": {**unfitted, "source": source}}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _score(images, found, labels, ground_truth, out_dir: Path, iou_threshold: float, score_threshold: float):
    """COCO metrics, the confusion matrix and each image's (missed, false) counts; their CSVs and plots."""
    from artdet.evaluate import metrics as scoring
    from artdet.evaluate import reports
    from artdet.evaluate.matching import confusion_matrix, image_errors

    metrics, precision = scoring.coco_metrics(ground_truth, scoring.predictions_of(found), labels)
    names = [labels[k] for k in sorted(labels)]
    truths = [im["boxes"] for im in images]
    matrix = confusion_matrix(truths, found, len(names), iou_threshold, score_threshold)
    errors = [image_errors(t, f, iou_threshold, score_threshold) for t, f in zip(truths, found, strict=True)]
    reports.write_confusion_csv(matrix, names, out_dir / "confusion_matrix.csv")
    reports.plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png", iou_threshold, score_threshold)
    reports.plot_precision_recall(precision, labels, out_dir / "precision_recall.png")
    reports.write_precision_recall_csv(precision, names, out_dir / "precision_recall.csv")
    reports.write_per_class_csv(scoring.per_class_counts(matrix, names, metrics), out_dir / "per_class.csv")
    return metrics, matrix, errors


def _draw(images, found, errors, labels, out_dir: Path, score_threshold: float, worst: int) -> None:
    """The worst images (most missed boxes, then false detections) and a sample, drawn; every detection as JSON."""
    from artdet.evaluate import reports

    order = sorted(range(len(images)), key=lambda i: (-errors[i][0], -errors[i][1], images[i]["name"]))
    order = [i for i in order if errors[i] != (0, 0)][:worst]
    worst_rows = [
        {
            "image": images[i]["name"],
            "missed": errors[i][0],
            "false_detections": errors[i][1],
            "ground_truth": len(images[i]["boxes"]),
        }
        for i in order
    ]
    (out_dir / "worst_images.json").write_text(json.dumps(worst_rows, indent=1) + "\n")

    def tile(i: int, caption: str):
        return reports.drawn_tile(images[i], found[i], labels, score_threshold, caption)

    reports.contact_sheet(
        [tile(i, f"{images[i]['name']}: {errors[i][0]} missed, {errors[i][1]} false") for i in order],
        out_dir / "worst_images.jpg",
    )
    samples = sorted(range(len(images)), key=lambda i: images[i]["name"])[:8]
    reports.contact_sheet([tile(i, images[i]["name"]) for i in samples], out_dir / "sample_detections.jpg")
    reports.write_detections(images, found, out_dir / "detections.json")


def _versus(reference, images, ground_truth, found, labels, tolerance: float, found_min_score: float) -> dict:
    """This form against the SavedModel's detections.json on the same images."""
    from artdet.evaluate import metrics as scoring

    ref = {row["image"]: row["detections"] for row in json.loads(Path(reference).read_text())}
    missing = [im["name"] for im in images if im["name"] not in ref]
    if missing:
        raise ValueError(f"{reference}: no detections for {missing[:5]}; evaluate both models on the same records")
    theirs = [[(c, s, tuple(b)) for c, s, b in ref[im["name"]]] for im in images]
    return scoring.versus_reference(ground_truth, found, theirs, labels, tolerance, found_min_score)
