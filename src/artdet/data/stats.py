"""Dataset statistics and a contact sheet, to see at a glance that the labels are right.

Counts of images and boxes per class and split, the distributions of box
size, box aspect ratio and image size (in the resized images the model is
trained on), and a sheet of a few images per class with their boxes drawn:
the checks an experienced user makes before spending GPU hours.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from artdet.data.dataset import Sample, read_manifest
from artdet.data.split import SIDES, read_sides
from artdet.deploy.draw import draw_detections
from artdet.deploy.runtime import Detection

# COCO's size categories, by box area in pixels.
SMALL, MEDIUM = 32**2, 96**2


def _load(shard_dirs: list[str | Path]) -> list[tuple[Sample, str, Path]]:
    rows = []
    for shard in map(Path, shard_dirs):
        sides = read_sides(shard / "split.csv")
        rows += [(s, sides[s.image], shard / "images") for s in read_manifest(shard / "manifest.json")]
    return rows


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    a = np.asarray(values, dtype=float)
    q = np.percentile(a, [0, 5, 25, 50, 75, 95, 100])
    return {
        "count": len(a),
        "mean": float(a.mean()),
        **dict(zip(["min", "p5", "p25", "median", "p75", "p95", "max"], map(float, q), strict=True)),
    }


def _side_counts() -> dict[str, dict[str, int]]:
    return {side: {"images": 0, "boxes": 0} for side in SIDES}


def box_shapes(samples: list[Sample]) -> dict:
    """The distributions that shape a model's anchors: image sizes, box sizes relative to the image, aspect ratios."""
    areas, aspects = [], []
    for sample in samples:
        for obj in sample.objects:
            w, h = obj["xmax"] - obj["xmin"], obj["ymax"] - obj["ymin"]
            areas.append(math.sqrt(w * h / (sample.width * sample.height)))
            aspects.append(w / h)
    return {
        "images": len(samples),
        "boxes": len(areas),
        "image_width_px": _summary([s.width for s in samples]),
        "image_height_px": _summary([s.height for s in samples]),
        "box_relative_size": _summary(areas),
        "box_aspect_ratio": _summary(aspects),
    }


def compute_stats(rows: list[tuple[Sample, str, Path]], classes: list[str]) -> dict:
    """Counts and distributions; every number is over the resized images.

    The distributions describe every split; ``train_boxes`` repeats those that shape training
    (:func:`box_shapes`) over the train split alone, which is all that a training decision
    (``anchors: fit``) may read: a test box must not move a setting it is scored with.
    """
    per_class = {name: _side_counts() for name in classes}
    widths, heights, areas, aspects, sizes = [], [], [], [], []
    size_category: Counter[str] = Counter()
    split_images: Counter[str] = Counter()
    for sample, side, _ in rows:
        split_images[side] += 1
        sizes.append((sample.width, sample.height))
        for name in {o["name"] for o in sample.objects}:
            per_class.setdefault(name, _side_counts())
            per_class[name][side]["images"] += 1
        for obj in sample.objects:
            w, h = obj["xmax"] - obj["xmin"], obj["ymax"] - obj["ymin"]
            per_class[obj["name"]][side]["boxes"] += 1
            widths.append(w)
            heights.append(h)
            areas.append(math.sqrt(w * h / (sample.width * sample.height)))
            aspects.append(w / h)
            size_category["small" if w * h < SMALL else "medium" if w * h < MEDIUM else "large"] += 1
    return {
        "images": {"total": len(rows), **{side: split_images[side] for side in SIDES}},
        "negatives": sum(1 for s, _, _ in rows if not s.objects),
        "boxes": len(widths),
        "per_class": per_class,
        "boxes_per_image": _summary([len(s.objects) for s, _, _ in rows]),
        "box_width_px": _summary(widths),
        "box_height_px": _summary(heights),
        "box_relative_size": _summary(areas),
        "box_aspect_ratio": _summary(aspects),
        "box_size_category": {k: size_category[k] for k in ("small", "medium", "large")},
        "image_width_px": _summary([w for w, _ in sizes]),
        "image_height_px": _summary([h for _, h in sizes]),
        "image_sizes_top": [[f"{w}x{h}", n] for (w, h), n in Counter(sizes).most_common(10)],
        "train_boxes": box_shapes([s for s, side, _ in rows if side == "train"]),
    }


def plot_class_counts(stats: dict, out: str | Path) -> None:
    names = list(stats["per_class"])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names) + 2), 3.6))
    width = 0.8 / len(SIDES)
    for index, side in enumerate(SIDES):
        counts = [stats["per_class"][n][side]["boxes"] for n in names]
        bars = ax.bar(x + (index - (len(SIDES) - 1) / 2) * width, counts, width=width, label=side)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, names, rotation=20 if len(names) > 4 else 0)
    ax.set_ylabel("boxes")
    ax.set_title("Boxes per class and split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_box_distributions(rows: list[tuple[Sample, str, Path]], out: str | Path) -> None:
    objects = [(o, s) for s, _, _ in rows for o in s.objects]
    rel = [math.sqrt((o["xmax"] - o["xmin"]) * (o["ymax"] - o["ymin"]) / (s.width * s.height)) for o, s in objects]
    aspect = [(o["xmax"] - o["xmin"]) / (o["ymax"] - o["ymin"]) for o, _ in objects]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    axes[0].hist(rel, bins=30, color="tab:blue")
    axes[0].set_xlabel("box size (sqrt of area / image area)")
    axes[0].set_ylabel("boxes")
    axes[1].hist(np.log2(aspect) if aspect else [], bins=30, color="tab:orange")
    axes[1].set_xlabel("aspect ratio, log2(width / height)")
    axes[2].scatter([s.width for s, _, _ in rows], [s.height for s, _, _ in rows], s=8, alpha=0.5)
    axes[2].set_xlabel("image width (px)")
    axes[2].set_ylabel("image height (px)")
    fig.suptitle("Boxes and images after resizing")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def contact_sheet(
    rows: list[tuple[Sample, str, Path]], classes: list[str], out: str | Path, per_class: int = 4, tile: int = 200
) -> None:
    """A grid: one row per class, ``per_class`` images containing it, ground-truth boxes drawn."""
    ids = {name: i for i, name in enumerate(classes, 1)}
    sheet = Image.new("RGB", (tile * per_class, tile * max(1, len(classes))), (255, 255, 255))
    for row, name in enumerate(classes):
        picks = [r for r in sorted(rows, key=lambda r: r[0].sha1) if any(o["name"] == name for o in r[0].objects)]
        for col, (sample, side, images) in enumerate(picks[:per_class]):
            image = np.asarray(Image.open(images / sample.image).convert("RGB"))
            boxes = [
                Detection(ids.get(o["name"], 0), o["name"], 1.0, (o["xmin"], o["ymin"], o["xmax"], o["ymax"]))
                for o in sample.objects
            ]
            drawn = Image.fromarray(draw_detections(image, boxes, caption=f"{name} / {side}", scores=False))
            drawn.thumbnail((tile - 4, tile - 4))
            sheet.paste(drawn, (col * tile + (tile - drawn.width) // 2, row * tile + (tile - drawn.height) // 2))
    sheet.save(out, quality=90)


def write_stats(shard_dirs: list[str | Path], classes: list[str], out_dir: str | Path) -> dict:
    """Write stats.json, class_counts.png, box_distributions.png and contact_sheet.jpg into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _load(shard_dirs)
    stats = compute_stats(rows, classes)
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    plot_class_counts(stats, out_dir / "class_counts.png")
    plot_box_distributions(rows, out_dir / "box_distributions.png")
    contact_sheet(rows, classes, out_dir / "contact_sheet.jpg")
    return stats
