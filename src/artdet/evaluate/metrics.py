"""COCO metrics by pycocotools, per-class counts, and an export scored against its SavedModel.

Model Garden's own COCO evaluator crashes under numpy 2; pycocotools on the
exported model's detections scores what users deploy.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from artdet.defaults import default

log = logging.getLogger(__name__)

# Names of COCOeval.stats, in order.
STAT_NAMES = [
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
]


def coco_metrics(ground_truth: list[dict], predictions: list[dict], classes: dict[int, str]) -> tuple[dict, np.ndarray]:
    """COCO metrics and the precision array for ``predictions`` against ``ground_truth``.

    ``ground_truth``: one dict per image with ``id``, ``width``, ``height`` and
    ``boxes`` (list of (class_id, xmin, ymin, xmax, ymax) in pixels).
    ``predictions``: dicts with ``image_id``, ``class_id``, ``score`` and ``box``
    (xmin, ymin, xmax, ymax). Returns the metrics dict (AP ... AR_large and
    ``per_class`` AP50/AP) and COCOeval's precision array
    [iou, recall, class, area, max_dets].
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations = [], []
    for image in ground_truth:
        images.append({"id": image["id"], "width": image["width"], "height": image["height"]})
        for cls, x0, y0, x1, y1 in image["boxes"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": int(cls),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": v} for k, v in sorted(classes.items())],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    result = {"num_images": len(images), "num_boxes": len(annotations), "num_detections": len(predictions)}
    if not predictions or not annotations:
        result.update({name: 0.0 for name in STAT_NAMES})
        result["per_class"] = {name: {"AP50": 0.0, "AP": 0.0} for name in classes.values()}
        return result, np.zeros((10, 101, len(classes), 4, 3))
    dets = [
        {
            "image_id": p["image_id"],
            "category_id": int(p["class_id"]),
            "bbox": [p["box"][0], p["box"][1], p["box"][2] - p["box"][0], p["box"][3] - p["box"][1]],
            "score": float(p["score"]),
        }
        for p in predictions
    ]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dt = gt.loadRes(dets)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.info("pycocotools summary:\n%s", buffer.getvalue())
    result.update({name: round(float(v), 4) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)})
    precision = evaluator.eval["precision"]
    per_class = {}
    for index, cat_id in enumerate(evaluator.params.catIds):
        p50 = precision[0, :, index, 0, -1]
        p_all = precision[:, :, index, 0, -1]
        per_class[classes[cat_id]] = {
            "AP50": round(float(p50[p50 > -1].mean()) if (p50 > -1).any() else -1.0, 4),
            "AP": round(float(p_all[p_all > -1].mean()) if (p_all > -1).any() else -1.0, 4),
        }
    result["per_class"] = per_class
    return result, precision


def ground_truth_of(images: list[dict]) -> list[dict]:
    """The ground truth of decoded test images (:func:`~artdet.evaluate.inference.load_test_images`)
    in the form :func:`coco_metrics` takes, images numbered from 1."""
    return [
        {
            "id": i,
            "width": int(im["pixels"].shape[1]),
            "height": int(im["pixels"].shape[0]),
            "boxes": [(c, *b) for c, b in im["boxes"]],
        }
        for i, im in enumerate(images, start=1)
    ]


# The most detections per image any form is scored with: Model Garden's detection generator
# returns 100 (every class included) from a SavedModel; TFLite's post-processing returns up to
# 100 boxes x their classes, and a two-stage model up to 100 boxes x top_k classes.
MAX_DETECTIONS = 100


def capped(found: list[list[tuple[int, float, tuple]]], cap: int = MAX_DETECTIONS) -> list[list[tuple]]:
    """Each image's ``cap`` best detections: every form is scored on equal terms.

    pycocotools limits detections per image *and class*, so without this a form that returns
    more entries per box would reach a recall the others cannot.
    """
    return [sorted(f, key=lambda d: -d[1])[:cap] for f in found]


def class_free_metrics(ground_truth: list[dict], boxes: list[list[tuple[float, tuple]]]) -> dict:
    """AP and AP50 with every class read as one: how well the boxes are found, whatever they are called.

    ``boxes`` holds each image's boxes once, with the detector's score. Beside the named AP it
    shows what a second stage could still gain (two-stage models: what it cost).
    """
    truth = [{**g, "boxes": [(1, *b[1:]) for b in g["boxes"]]} for g in ground_truth]
    predictions = [
        {"image_id": i, "class_id": 1, "score": s, "box": b} for i, found in enumerate(boxes, start=1) for s, b in found
    ]
    metrics, _ = coco_metrics(truth, predictions, {1: "object"})
    return {"AP": metrics["AP"], "AP50": metrics["AP50"]}


def predictions_of(found: list[list[tuple[int, float, tuple]]]) -> list[dict]:
    """Detections per image, (class_id, score, box), in the form :func:`coco_metrics` takes."""
    return [
        {"image_id": i, "class_id": c, "score": s, "box": b}
        for i, dets in enumerate(found, start=1)
        for c, s, b in dets
    ]


def per_class_counts(matrix: np.ndarray, names: list[str], metrics: dict) -> list[dict]:
    """Per class at the score threshold: AP50 and AP with the counts behind the confusion matrix's diagonal."""
    rows = []
    for index, name in enumerate(names, start=1):
        tp = int(matrix[index, index])
        fp = int(matrix[:, index].sum() - tp)
        fn = int(matrix[index, :].sum() - tp)
        gt = int(matrix[index, :].sum())
        ap = metrics["per_class"][name]
        rows.append(
            {
                "class": name,
                "AP50": ap["AP50"],
                "AP": ap["AP"],
                "ground_truth": gt,
                "true_positives": tp,
                "false_positives": fp,
                "missed": fn,
                "precision": f"{tp / (tp + fp) if tp + fp else 0:.4f}",
                "recall": f"{tp / gt if gt else 0:.4f}",
            }
        )
    return rows


# The figures an export is compared on with the SavedModel, those whose loss beyond the tolerance
# flags it, and the lowest score of the SavedModel's detections it is asked to find (defaults of
# config.yaml's `evaluation:` keys). AR100 is shown, not flagged: on a dozen test images it moves
# with single boxes at the strictest IoUs.
COMPARED = ("AP", "AP50", "AR100")
FLAGGED = ("AP", "AP50")
EXPORT_TOLERANCE: float = default("evaluation.export_tolerance")
FOUND_MIN_SCORE: float = default("evaluation.found_min_score")


def versus_reference(
    ground_truth: list[dict],
    found: list[list[tuple[int, float, tuple]]],
    reference: list[list[tuple[int, float, tuple]]],
    classes: dict[int, str],
    tolerance: float = EXPORT_TOLERANCE,
    min_score: float = FOUND_MIN_SCORE,
) -> dict:
    """How an exported form scores against the model it came from, on the same images.

    Both sets of detections are scored by pycocotools against the same
    ground truth, so the differences in AP, AP50 and AR100 are the accuracy
    the export cost; ``found`` is the share of the reference's detections
    (every class, score >= ``min_score``) that the form returns. A form that
    loses more than ``tolerance`` in AP or AP50 is ``lossy``; a form that
    differs by more than that either way gets a warning line, since a gain
    can hide a loss.

    Both are scored with the same most detections per image (``max_detections``,
    the reference's largest count): a TFLite file returns up to 100 boxes x
    their classes, and the extra entries would lift its recall above what the
    SavedModel could reach, whatever the quantisation cost.
    """
    from artdet.evaluate.matching import found_share

    cap = max((len(r) for r in reference), default=0)
    found = capped(found, cap)

    def predictions(detections: list) -> list[dict]:
        return [
            {"image_id": image["id"], "class_id": c, "score": s, "box": b}
            for image, dets in zip(ground_truth, detections, strict=True)
            for c, s, b in dets
        ]

    ours, _ = coco_metrics(ground_truth, predictions(found), classes)
    theirs, _ = coco_metrics(ground_truth, predictions(reference), classes)
    difference = {name: round(ours[name] - theirs[name], 4) for name in COMPARED}
    losses = {name: -difference[name] for name in FLAGGED if -difference[name] > tolerance}
    gains = {name: difference[name] for name in FLAGGED if difference[name] > tolerance}
    share = found_share(reference, found, min_score=min_score)
    parts = [f"loses {v:.3f} {name}" for name, v in losses.items()]
    parts += [f"gains {v:.3f} {name}" for name, v in gains.items()]
    warning = None
    if parts:
        warning = (
            ", ".join(parts) + f" against the SavedModel (tolerance {tolerance}, either way: a gain can hide a loss); "
            f"it finds {share['matched']} of the SavedModel's {share['reference_detections']} detections with "
            f"score >= {min_score}"
        )
    return {
        "reference_metrics": {name: theirs[name] for name in COMPARED},
        "difference": difference,
        "found": share,
        "tolerance": tolerance,
        "max_detections": cap,
        "lossy": bool(losses),
        "differs": bool(losses or gains),
        "warning": warning,
    }
