"""The label review's files: each fold's held-out predictions, then issues.csv, review.html and the image list.

Labels come from the shards' ``validated.json`` (the boxes that reach training, in the upright
photo's pixels), with each box's index in its XML file (boxes that validation dropped are
skipped, so the index is LabelImg's). Predictions are made on the original photo, upright, as
``artdet detect`` makes them. Coordinates in issues.csv are those of the XML file (the stored
pixels LabelImg draws on), so a suggested box can be typed in as it is.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from artdet.evaluate.label_review import KINDS, PREDICTION_FLOOR, LabelIssue, ReviewImage

log = logging.getLogger(__name__)

ISSUE_FIELDS = [
    "rank",
    "image",
    "annotation",
    "object",
    "kind",
    "label",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "suggestion",
    "suggested_class",
    "suggested_box",
    "suspicion",
]


def fold_images(folds: dict[str, int], fold: int, validated: list[str | Path]) -> list[ReviewImage]:
    """The labelled images of one fold, with their labels and XML indices (no predictions yet)."""
    from artdet.data.validate import DatasetValidation

    images = []
    for path in validated:
        data = DatasetValidation.read(path)
        dropped: dict[str, set[int]] = {}
        for issue in data.issues:
            if issue.dropped == "box" and issue.object is not None:
                dropped.setdefault(issue.file, set()).add(issue.object)
        for item in data.images:
            if folds.get(item.source) != fold:
                continue
            gone = dropped.get(item.annotation or "", set())
            indices = (i for i in range(len(item.objects) + len(gone)) if i not in gone)
            labels = [
                (index, o["name"], (o["xmin"], o["ymin"], o["xmax"], o["ymax"]))
                for index, o in zip(indices, item.objects, strict=False)
            ]
            images.append(
                ReviewImage(item.source, item.annotation, item.width, item.height, item.orientation, fold, labels)
            )
    missing = sorted(set(s for s, k in folds.items() if k == fold) - {i.source for i in images})
    if missing:
        raise ValueError(f"{missing[:5]}: in folds.csv but in no validated.json; rebuild the data stages")
    return sorted(images, key=lambda i: i.source)


def predict(model: str | Path, images: list[ReviewImage], dataset: str | Path) -> None:
    """Each image's detections by ``model`` (every class from PREDICTION_FLOOR on), on the upright photo."""
    from artdet.classify.dataset import load_rgb
    from artdet.deploy.runtime import Detector

    detector = Detector(model, name_boxes=False)
    for n, image in enumerate(images, start=1):
        pixels = load_rgb(Path(dataset) / image.source)
        image.predictions = [
            (d.class_name, round(float(d.score), 4), tuple(round(float(v), 2) for v in d.box))
            for d in detector(pixels, min_score=PREDICTION_FLOOR)
        ]
        if n % 25 == 0 or n == len(images):
            log.info("review | fold %d: %d/%d images predicted", image.fold, n, len(images))


def write_predictions(images: list[ReviewImage], path: str | Path) -> None:
    Path(path).write_text(json.dumps([asdict(i) for i in images], indent=1) + "\n")


def read_predictions(paths: list[str | Path]) -> list[ReviewImage]:
    images = []
    for path in paths:
        for item in json.loads(Path(path).read_text()):
            item["labels"] = [(i, n, tuple(b)) for i, n, b in item["labels"]]
            item["predictions"] = [(n, s, tuple(b)) for n, s, b in item["predictions"]]
            images.append(ReviewImage(**item))
    return sorted(images, key=lambda i: i.source)


def _stored(box, image: ReviewImage) -> tuple:
    """A box of the upright photo in the stored pixels LabelImg draws on (the XML's frame)."""
    from artdet.data.validate import stored_box

    if box is None or image.orientation in (0, 1):
        return box
    return tuple(round(v, 1) for v in stored_box(box, image.orientation, image.width, image.height))


def write_issues(issues: list[LabelIssue], images: list[ReviewImage], path: str | Path) -> None:
    """issues.csv: one row per issue, most suspicious first, boxes in the XML's pixels."""
    by_source = {i.source: i for i in images}
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ISSUE_FIELDS)
        writer.writeheader()
        for rank, issue in enumerate(issues, start=1):
            image = by_source[issue.image]
            box = _stored(issue.box, image)
            fix = _stored(issue.suggested_box, image)
            writer.writerow(
                {
                    "rank": rank,
                    "image": issue.image,
                    "annotation": issue.annotation or "",
                    "object": "" if issue.object is None else issue.object,
                    "kind": issue.kind,
                    "label": issue.label or "",
                    **dict(zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)),
                    "suggestion": issue.suggestion,
                    "suggested_class": issue.suggested_class or "",
                    "suggested_box": " ".join(str(v) for v in fix) if fix else "",
                    "suspicion": issue.suspicion,
                }
            )


def read_issues(path: str | Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_image_list(issues: list[LabelIssue], dataset: str | Path, path: str | Path) -> list[str]:
    """The photos to open in LabelImg, the most suspicious first, each once."""
    seen: dict[str, None] = {}
    for issue in issues:
        seen.setdefault(str((Path(dataset) / issue.image).resolve()), None)
    Path(path).write_text("".join(f"{p}\n" for p in seen))
    return list(seen)


def _thumbnail(issue: LabelIssue, image: ReviewImage, dataset: Path, side: int = 240) -> str:
    """The region of one issue, the label in red (dashed: what is in doubt) and the prediction in green."""
    from PIL import Image, ImageDraw

    from artdet.classify.dataset import load_rgb

    pixels = load_rgb(dataset / image.source)
    boxes = [b for b in (issue.box, issue.suggested_box) if b is not None]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = max(x1 - x0, y1 - y0) * 0.6 + 8
    h, w = pixels.shape[:2]
    crop = (int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(w, x1 + pad)), int(min(h, y1 + pad)))
    tile = Image.fromarray(np.ascontiguousarray(pixels[crop[1] : crop[3], crop[0] : crop[2]]))
    scale = side / max(tile.size)
    tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))))
    draw = ImageDraw.Draw(tile)

    def shifted(box):
        return [
            (box[0] - crop[0]) * scale,
            (box[1] - crop[1]) * scale,
            (box[2] - crop[0]) * scale,
            (box[3] - crop[1]) * scale,
        ]

    if issue.kind == "missing":
        draw.rectangle(shifted(issue.box), outline=(0, 200, 0), width=3)
    else:
        draw.rectangle(shifted(issue.box), outline=(220, 0, 0), width=3)
        if issue.suggested_box is not None:
            draw.rectangle(shifted(issue.suggested_box), outline=(0, 200, 0), width=2)
    buffer = io.BytesIO()
    tile.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html(
    issues: list[LabelIssue], images: list[ReviewImage], dataset: str | Path, path: str | Path, top: int
) -> None:
    """review.html: a thumbnail per issue (the ``top`` most suspicious), self-contained."""
    by_source = {i.source: i for i in images}
    cards = []
    for rank, issue in enumerate(issues[:top], start=1):
        thumb = _thumbnail(issue, by_source[issue.image], Path(dataset))
        what = f"{issue.label} (object {issue.object})" if issue.object is not None else "no box"
        cards.append(
            f"<figure><img src='{thumb}' alt='issue {rank}'><figcaption><b>{rank}. {html.escape(issue.kind)}</b> "
            f"{html.escape(issue.suspicion.__format__('.2f'))}<br>{html.escape(issue.image)}: {html.escape(what)}"
            f"<br>{html.escape(issue.suggestion)}</figcaption></figure>"
        )
    counts = {kind: sum(i.kind == kind for i in issues[:top]) for kind in KINDS}
    style = (
        "body{font-family:sans-serif}figure{display:inline-block;width:250px;margin:6px;vertical-align:top}"
        "img{max-width:240px;border:1px solid #999}figcaption{font-size:12px}"
    )
    Path(path).write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Label review</title><style>{style}</style>"
        f"</head><body><h1>Label review</h1><p>The {min(top, len(issues))} most suspicious of {len(issues)} "
        f"ranked labels and predictions ({', '.join(f'{k}: {v}' for k, v in counts.items())}). "
        "Red: the label in doubt; green: what the model that never trained on this photo found there.</p>"
        + "".join(cards)
        + "</body></html>\n"
    )


def review(
    predictions: list[str | Path],
    label_map: str | Path,
    dataset: str | Path,
    out_dir: str | Path,
    scorer: str = "cleanlab",
    high: float = 0.5,
    low: float = 0.2,
    thumbnails: int = 200,
) -> dict:
    """Rank every fold's labels and predictions; write issues.csv, review.html, images.txt and summary.json.

    Nothing in the dataset folder is touched.
    """
    from artdet.data.label_map import read_label_map
    from artdet.evaluate.label_review import rank_issues

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = read_label_map(label_map)
    classes = [labels[k] for k in sorted(labels)]
    images = read_predictions(predictions)
    issues = rank_issues(images, classes, scorer, high, low)
    write_issues(issues, images, out_dir / "issues.csv")
    listed = write_image_list(issues[: max(thumbnails, 1)], dataset, out_dir / "images.txt")
    write_html(issues, images, dataset, out_dir / "review.html", thumbnails)
    summary = {
        "scorer": scorer,
        "high_score": high,
        "low_score": low,
        "images": len(images),
        "labels": sum(len(i.labels) for i in images),
        "issues": len(issues),
        "per_kind_in_top": {kind: sum(i.kind == kind for i in issues[:thumbnails]) for kind in KINDS},
        "list": str(out_dir / "images.txt"),
        "listed_images": len(listed),
        "top": [
            {"rank": r, "kind": i.kind, "suspicion": i.suspicion, "image": i.image, "suggestion": i.suggestion}
            for r, i in enumerate(issues[:10], start=1)
        ],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "review | %d images, %d labels: %d issues ranked (%s)", len(images), summary["labels"], len(issues), scorer
    )
    return summary
