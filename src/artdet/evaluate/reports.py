"""What an evaluation writes besides metrics.json: plots, CSV tables, image grids and an HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from artdet.evaluate.metrics import COMPARED, STAT_NAMES


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


def contact_sheet(tiles: list[np.ndarray], out: str | Path, columns: int = 4, tile: int = 320) -> None:
    """Tiles (RGB arrays) in a grid of ``columns``, each fitted into a ``tile``-pixel square."""
    from PIL import Image

    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (tile * columns, tile * rows), (255, 255, 255))
    for index, pixels in enumerate(tiles):
        image = Image.fromarray(pixels)
        image.thumbnail((tile - 4, tile - 4))
        r, c = divmod(index, columns)
        sheet.paste(image, (c * tile + (tile - image.width) // 2, r * tile + (tile - image.height) // 2))
    sheet.save(out, quality=90)


def write_confusion_csv(matrix: np.ndarray, names: list[str], out: Path) -> None:
    np.savetxt(
        out,
        matrix,
        fmt="%d",
        delimiter=",",
        header=",".join(["true\\predicted", "background", *names]),
        comments="",
    )


def write_precision_recall_csv(precision: np.ndarray, names: list[str], out: Path) -> None:
    """Precision at each recall step at IoU 0.5, one row per class and step that has one."""
    recall = np.linspace(0, 1, precision.shape[1])
    with open(out, "w") as handle:
        handle.write("class,recall,precision\n")
        for index, name in enumerate(names):
            for r, p in zip(recall, precision[0, :, index, 0, -1], strict=True):
                if p > -1:
                    handle.write(f"{name},{r:.2f},{p:.4f}\n")


def write_per_class_csv(rows: list[dict], out: Path) -> None:
    columns = [
        "class",
        "AP50",
        "AP",
        "ground_truth",
        "true_positives",
        "false_positives",
        "missed",
        "precision",
        "recall",
    ]
    with open(out, "w") as handle:
        handle.write(",".join(columns) + "\n")
        for row in rows:
            handle.write(",".join(str(row[c]) for c in columns) + "\n")


def write_detections(images: list[dict], found: list, out: Path) -> None:
    """Every detection per image at full precision: the reference an export is compared with.

    Read back, it must score exactly as the SavedModel did: rounded scores tie near-equal
    detections, and pycocotools then matches them in another order (another AP).
    """
    rows = [
        {"image": im["name"], "detections": [[int(c), float(s), [float(v) for v in b]] for c, s, b in f]}
        for im, f in zip(images, found, strict=True)
    ]
    out.write_text(json.dumps(rows) + "\n")


def drawn_tile(
    image: dict, found: list, labels: dict[int, str], score_threshold: float, caption: str, tile: int = 316
) -> np.ndarray:
    """An image scaled to a grid tile, with its labelled boxes and its detections drawn at that scale."""
    from PIL import Image

    from artdet.deploy.draw import draw_detections, draw_ground_truth
    from artdet.deploy.runtime import Detection

    pixels = image["pixels"]
    f = tile / max(pixels.shape[:2])
    size = (round(pixels.shape[1] * f), round(pixels.shape[0] * f))
    pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    detections = [
        Detection(c, labels.get(c, str(c)), s, tuple(v * f for v in b)) for c, s, b in found if s >= score_threshold
    ]
    gt = [(labels.get(c, str(c)), tuple(v * f for v in b)) for c, b in image["boxes"]]
    return draw_detections(draw_ground_truth(pixels, gt), detections, caption=caption)


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
    if "class_free" in metrics:
        # Beside the named AP: the same boxes with their names ignored (what naming costs or could gain).
        coco += [[f"class-free {name}", value] for name, value in metrics["class_free"].items()]
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
    point = metrics.get("at_operating_point")
    if point:
        source = (metrics.get("operating_point") or {}).get("source", "none stored: detect.unfitted_min_score")
        speed = [
            [*speed[0], "score threshold", "precision", "recall", "F1"],
            [*speed[1], f"{point['min_score']} ({source})", point["precision"], point["recall"], point["f1"]],
        ]
    with open(per_class_csv, newline="") as handle:
        per_class = list(csv.reader(handle))
    stage = (
        "<p>two-stage: a class-agnostic detector; a classifier names each box</p>" if metrics.get("two_stage") else ""
    )
    parts = [
        f"<h1>{escape(str(metrics.get('model_path', 'model')))}</h1>{stage}",
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
