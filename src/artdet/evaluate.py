"""Evaluate an exported model on the test TFRecord with pycocotools.

Model Garden's own COCO evaluator crashes under numpy 2, and evaluating the
exported SavedModel (not the training checkpoint) checks what users deploy.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np

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


def plot_precision_recall(precision: np.ndarray, classes: dict[int, str], out: str | Path) -> None:
    """Precision against recall at IoU 0.5, one line per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, precision.shape[1])
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for index, name in enumerate(classes[k] for k in sorted(classes)):
        curve = precision[0, :, index, 0, -1]
        if (curve > -1).any():
            ap = curve[curve > -1].mean()
            ax.plot(recall, np.where(curve > -1, curve, np.nan), label=f"{name} (AP50 {ap:.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall at IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def evaluate(
    model_dir: str | Path, test_records: str | Path | list[str | Path], out_json: str | Path, pr_plot: str | Path
) -> dict:
    """Run the exported model on every test image (of one or more TFRecords); write metrics and the PR plot."""
    import tensorflow as tf

    from artdet.predict import Detector
    from artdet.tfrecord import read_examples

    detector = Detector(model_dir)
    ground_truth, predictions = [], []
    if isinstance(test_records, str | Path):
        test_records = [test_records]
    examples = [ex for path in test_records for ex in read_examples(path)]
    for image_id, ex in enumerate(examples, start=1):
        width, height = int(ex["image/width"]), int(ex["image/height"])
        boxes = [
            (int(c), x0 * width, y0 * height, x1 * width, y1 * height)
            for c, x0, y0, x1, y1 in zip(
                ex["image/object/class/label"],
                ex["image/object/bbox/xmin"],
                ex["image/object/bbox/ymin"],
                ex["image/object/bbox/xmax"],
                ex["image/object/bbox/ymax"],
                strict=True,
            )
        ]
        ground_truth.append({"id": image_id, "width": width, "height": height, "boxes": boxes})
        pixels = tf.io.decode_image(ex["image/encoded"], channels=3).numpy()
        for det in detector(pixels):
            predictions.append({"image_id": image_id, "class_id": det.class_id, "score": det.score, "box": det.box})
    metrics, precision = coco_metrics(ground_truth, predictions, detector.labels)
    info_path = Path(model_dir) / "artdet_model.json"
    if info_path.exists():
        metrics["model"] = json.loads(info_path.read_text())
    Path(out_json).write_text(json.dumps(metrics, indent=2) + "\n")
    plot_precision_recall(precision, detector.labels, pr_plot)
    return metrics
