"""Evaluate an exported model on the test TFRecords: pycocotools, confusion, errors, speed.

Model Garden's own COCO evaluator crashes under numpy 2, and evaluating the
exported model (the SavedModel or a TFLite file, not the training checkpoint)
checks what users deploy.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
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


def plot_confusion_matrix(matrix: np.ndarray, names: list[str], out: str | Path, iou: float, score: float) -> None:
    """The confusion matrix as a heat map; row and column 0 are the background."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["background", *names]
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2.5, 1.0 * len(labels) + 2), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    for (r, c), value in np.ndenumerate(matrix):
        ax.text(c, r, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (IoU {iou:g}, score {score:g})")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _grid(tiles: list[np.ndarray], out: str | Path, columns: int = 4, tile: int = 320) -> None:
    from PIL import Image

    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (tile * columns, tile * rows), (255, 255, 255))
    for index, pixels in enumerate(tiles):
        image = Image.fromarray(pixels)
        image.thumbnail((tile - 4, tile - 4))
        r, c = divmod(index, columns)
        sheet.paste(image, (c * tile + (tile - image.width) // 2, r * tile + (tile - image.height) // 2))
    sheet.save(out, quality=90)


# The figures an export is compared on with the SavedModel, those whose loss beyond the tolerance
# flags it, and the lowest score of the SavedModel's detections it is asked to find (defaults of
# config.yaml's `evaluation:` keys; tests check that the schema says the same). AR100 is shown,
# not flagged: on a dozen test images it moves with single boxes at the strictest IoUs.
COMPARED = ("AP", "AP50", "AR100")
FLAGGED = ("AP", "AP50")
EXPORT_TOLERANCE = 0.02
FOUND_MIN_SCORE = 0.1


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
    loses more than ``tolerance`` in AP or AP50 is ``lossy`` and gets a
    warning line.
    """
    from artdet.matching import found_share

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
    share = found_share(reference, found, min_score=min_score)
    warning = None
    if losses:
        warning = (
            "loses "
            + ", ".join(f"{loss:.3f} {name}" for name, loss in losses.items())
            + f" against the SavedModel (tolerance {tolerance}); it finds {share['matched']} of the SavedModel's "
            f"{share['reference_detections']} detections with score >= {min_score}"
        )
    return {
        "reference_metrics": {name: theirs[name] for name in COMPARED},
        "difference": difference,
        "found": share,
        "tolerance": tolerance,
        "lossy": bool(losses),
        "warning": warning,
    }


def _size_bytes(model: Path) -> int:
    return model.stat().st_size if model.is_file() else sum(p.stat().st_size for p in model.rglob("*") if p.is_file())


def load_test_images(test_records: list[str | Path]) -> list[dict]:
    """Decoded test images with their ground truth: name, pixels, boxes [(class_id, (x0, y0, x1, y1))]."""
    import tensorflow as tf

    from artdet.tfrecord import read_examples

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


def evaluate_model(
    model: str | Path,
    test_records: str | Path | list[str | Path],
    out_dir: str | Path,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    worst: int = 8,
    reference: str | Path | None = None,
    tolerance: float = EXPORT_TOLERANCE,
    found_min_score: float = FOUND_MIN_SCORE,
) -> dict:
    """Evaluate an exported model (SavedModel folder or .tflite file) on the test TFRecords.

    Writes into ``out_dir``: metrics.json (COCO AP/AR by pycocotools, AP50 and
    AP per class, latency median/p90, model size, and, when ``reference`` (the
    SavedModel's detections.json) is given, ``versus_reference``: see
    :func:`versus_reference`), per_class.csv,
    precision_recall.png/.csv, confusion_matrix.png/.csv, worst_images.jpg/.json
    (the images with the most missed boxes, predictions and ground truth drawn),
    sample_detections.jpg and detections.json.
    """
    from artdet.draw import draw_detections, draw_ground_truth
    from artdet.matching import confusion_matrix, image_errors
    from artdet.predict import Detection, Detector

    model, out_dir = Path(model), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(test_records, str | Path):
        test_records = [test_records]
    detector = Detector(model)
    images = load_test_images(test_records)
    if not images:
        raise ValueError(f"no test images in {', '.join(map(str, test_records))}")
    for _ in range(2):  # warm-up: graph tracing and allocation are not latency
        detector(images[0]["pixels"])
    latencies, found = [], []
    for image in images:
        start = time.perf_counter()
        detections = detector(image["pixels"])
        latencies.append(time.perf_counter() - start)
        found.append([(d.class_id, d.score, d.box) for d in detections])

    ground_truth = [
        {
            "id": i,
            "width": int(im["pixels"].shape[1]),
            "height": int(im["pixels"].shape[0]),
            "boxes": [(c, *b) for c, b in im["boxes"]],
        }
        for i, im in enumerate(images, start=1)
    ]
    predictions = [
        {"image_id": i, "class_id": c, "score": s, "box": b}
        for i, dets in enumerate(found, start=1)
        for c, s, b in dets
    ]
    metrics, precision = coco_metrics(ground_truth, predictions, detector.labels)
    names = [detector.labels[k] for k in sorted(detector.labels)]
    truths = [im["boxes"] for im in images]

    matrix = confusion_matrix(truths, found, len(names), iou_threshold, score_threshold)
    np.savetxt(
        out_dir / "confusion_matrix.csv",
        matrix,
        fmt="%d",
        delimiter=",",
        header=",".join(["true\\predicted", "background", *names]),
        comments="",
    )
    plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png", iou_threshold, score_threshold)
    plot_precision_recall(precision, detector.labels, out_dir / "precision_recall.png")
    recall = np.linspace(0, 1, precision.shape[1])
    with open(out_dir / "precision_recall.csv", "w") as handle:
        handle.write("class,recall,precision\n")
        for index, name in enumerate(names):
            for r, p in zip(recall, precision[0, :, index, 0, -1], strict=True):
                if p > -1:
                    handle.write(f"{name},{r:.2f},{p:.4f}\n")

    # Per class at the score threshold: the counts behind the confusion matrix's diagonal.
    with open(out_dir / "per_class.csv", "w") as handle:
        handle.write("class,AP50,AP,ground_truth,true_positives,false_positives,missed,precision,recall\n")
        for index, name in enumerate(names, start=1):
            tp = int(matrix[index, index])
            fp = int(matrix[:, index].sum() - tp)
            fn = int(matrix[index, :].sum() - tp)
            gt = int(matrix[index, :].sum())
            ap = metrics["per_class"][name]
            handle.write(
                f"{name},{ap['AP50']},{ap['AP']},{gt},{tp},{fp},{fn},"
                f"{tp / (tp + fp) if tp + fp else 0:.4f},{tp / gt if gt else 0:.4f}\n"
            )

    errors = [image_errors(t, f, iou_threshold, score_threshold) for t, f in zip(truths, found, strict=True)]
    order = sorted(range(len(images)), key=lambda i: (-errors[i][0], -errors[i][1], images[i]["name"]))
    order = [i for i in order if errors[i] != (0, 0)][:worst]

    def drawn(i: int, caption: str, tile: int = 316) -> np.ndarray:
        """Image ``i`` scaled to the grid's tile, with labelled boxes and detections drawn at that scale."""
        from PIL import Image

        pixels = images[i]["pixels"]
        f = tile / max(pixels.shape[:2])
        size = (round(pixels.shape[1] * f), round(pixels.shape[0] * f))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
        detections = [
            Detection(c, detector.labels.get(c, str(c)), s, tuple(v * f for v in b))
            for c, s, b in found[i]
            if s >= score_threshold
        ]
        gt = [(detector.labels.get(c, str(c)), tuple(v * f for v in b)) for c, b in images[i]["boxes"]]
        return draw_detections(draw_ground_truth(pixels, gt), detections, caption=caption)

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
    _grid(
        [drawn(i, f"{images[i]['name']}: {errors[i][0]} missed, {errors[i][1]} false") for i in order],
        out_dir / "worst_images.jpg",
    )
    samples = sorted(range(len(images)), key=lambda i: images[i]["name"])[:8]
    _grid([drawn(i, images[i]["name"]) for i in samples], out_dir / "sample_detections.jpg")

    (out_dir / "detections.json").write_text(
        json.dumps(
            [
                {"image": im["name"], "detections": [[c, round(s, 5), [round(v, 2) for v in b]] for c, s, b in f]}
                for im, f in zip(images, found, strict=True)
            ]
        )
        + "\n"
    )
    ms = np.asarray(latencies) * 1000
    metrics.update(
        {
            "model_path": str(model),
            "format": "tflite" if model.suffix == ".tflite" else "saved_model",
            "size_mb": round(_size_bytes(model) / 1e6, 2),
            "latency_ms": {
                "median": round(float(np.median(ms)), 2),
                "p90": round(float(np.percentile(ms, 90)), 2),
                "mean": round(float(ms.mean()), 2),
                "images": len(ms),
                "batch": 1,
            },
            "thresholds": {"iou": iou_threshold, "score": score_threshold},
            "confusion_matrix": {"labels": ["background", *names], "counts": matrix.tolist()},
            "missed_boxes": int(sum(e[0] for e in errors)),
            "false_detections": int(sum(e[1] for e in errors)),
        }
    )
    if reference is not None:
        ref = {row["image"]: row["detections"] for row in json.loads(Path(reference).read_text())}
        missing = [im["name"] for im in images if im["name"] not in ref]
        if missing:
            raise ValueError(f"{reference}: no detections for {missing[:5]}; evaluate both models on the same records")
        comparison = versus_reference(
            ground_truth,
            found,
            [[(c, s, tuple(b)) for c, s, b in ref[im["name"]]] for im in images],
            detector.labels,
            tolerance,
            found_min_score,
        )
        metrics["versus_reference"] = {"reference": str(reference), **comparison}
        if comparison["warning"]:
            log.warning("%s %s", model, comparison["warning"])
    info_path = (model.parent if model.is_file() else model) / "artdet_model.json"
    if info_path.exists():
        metrics["model"] = json.loads(info_path.read_text())
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "metrics.html").write_text(metrics_html(metrics, out_dir / "per_class.csv"))
    return metrics


def metrics_html(metrics: dict, per_class_csv: str | Path) -> str:
    """The metrics as a self-contained HTML page: COCO numbers, speed and size, and the per-class table."""
    import csv
    from html import escape

    def table(rows: list[list]) -> str:
        head, *body = rows
        return (
            "<table><tr>"
            + "".join(f"<th>{escape(str(c))}</th>" for c in head)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in body)
            + "</table>"
        )

    coco = [["metric", "value"]] + [[name, metrics[name]] for name in STAT_NAMES]
    speed = [
        ["latency median (ms)", "latency p90 (ms)", "size (MB)", "test images", "labelled boxes"],
        [
            metrics["latency_ms"]["median"],
            metrics["latency_ms"]["p90"],
            metrics["size_mb"],
            metrics["num_images"],
            metrics["num_boxes"],
        ],
    ]
    with open(per_class_csv, newline="") as handle:
        per_class = list(csv.reader(handle))
    parts = [
        f"<h1>{escape(str(metrics.get('model_path', 'model')))}</h1>",
        table(speed),
        "<h2>COCO metrics</h2>",
        table(coco),
        "<h2>Per class</h2>",
        table(per_class),
    ]
    if "versus_reference" in metrics:
        v = metrics["versus_reference"]
        rows = [["", *COMPARED], ["this model", *(metrics[n] for n in COMPARED)]]
        rows += [["SavedModel", *v["reference_metrics"].values()], ["difference", *v["difference"].values()]]
        f = v["found"]
        parts += [
            "<h2>Against the SavedModel</h2>",
            f"<p class='warning'><b>Warning:</b> {escape(v['warning'])}</p>" if v["warning"] else "",
            table(rows),
            f"<p>Finds {f['matched']} of the SavedModel's {f['reference_detections']} detections "
            f"(every class, score &ge; {f['min_score']}): {f['share']}</p>",
        ]
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px}.warning{color:#a00}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Metrics</title><style>{style}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
