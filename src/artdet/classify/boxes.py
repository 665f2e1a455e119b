"""The second stage of a two-stage model: a classifier that names the boxes a class-agnostic detector finds.

At the detector's input (320 pixels) look-alike classes, such as the jack, queen and king of
a card deck or the figures of one painting, differ by a few pixels of drawing; in the original
photo they differ plainly. A detector trained with one class ("something is here") learns
where the objects are far faster than one that must also tell them apart, and the artwork
classifier (SIFT words, colour, linear SVM: :mod:`artdet.classify.model`) reads each box from
the full-resolution pixels. The two together are the tutorial's detector and its artwork
classifier joined.

The classifier trains on crops of the **train split only**, cut from the original photos
(after the EXIF turn) with ``classify.crop_padding``; val and test boxes are counted in the
shard's report, never cropped. At detection time each box is cut the same way from the image
the caller gave, the features of all the boxes of a photo go through one SVM call, and each box
carries its ``top_k`` classes with score = detector score x class probability.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from artdet.classify.dataset import Item, ShardScan, padded_box
from artdet.defaults import default

# The folder of a model's two-stage form (results/<model>/two_stage/), and the classifier's
# file name inside an exported model (beside saved_model.pb, or beside model.tflite).
TWO_STAGE = "two_stage"
CLASSIFIER_FILE = "classifier.joblib"
# Boxes the detector scores below this are not named: their named score (detector score x
# probability) could not reach it either, and each named box costs a SIFT pass.
NAME_FLOOR = 0.05


def classifier_mode(value: object) -> str:
    """``models.<name>.classifier`` as auto, on or off (YAML reads a bare on/off as a boolean)."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    mode = str(value if value is not None else default("models.*.classifier"))
    if mode not in {"auto", "on", "off"}:
        raise ValueError(f"models.<name>.classifier must be auto, on or off, not {value!r}")
    return mode


def train_crops(
    validation_images: list,
    sources_by_side: dict[str, str],
    crop_padding: float = default("classify.crop_padding"),
    min_side: int = default("classify.min_side"),
) -> tuple[ShardScan, dict[str, int]]:
    """The classifier's items of one data shard: every train-side box, as a padded crop of the original photo.

    ``validation_images`` are the shard's validated images (boxes in the upright pixels of the
    original photo); ``sources_by_side`` maps each image's source path to its side of the
    split. Returns the scan (items, drops with their reason) and the boxes per side, so the
    report shows that no val or test box became a training crop.
    """
    scan = ShardScan(layout="detector boxes")
    boxes = {"train": 0, "val": 0, "test": 0}
    for image in validation_images:
        side = sources_by_side.get(image.source)
        if side is None:
            scan.dropped.append({"file": image.source, "reason": "not in the shard's split.csv"})
            continue
        boxes[side] += len(image.objects)
        if side != "train":
            continue
        for index, obj in enumerate(image.objects):
            corners = (obj["xmin"], obj["ymin"], obj["xmax"], obj["ymax"])
            box = padded_box(corners, image.width, image.height, crop_padding)
            if min(box[2] - box[0], box[3] - box[1]) < min_side:
                scan.dropped.append(
                    {"file": f"{image.source}#{index}", "reason": f"box smaller than {min_side} pixels a side"}
                )
                continue
            scan.items.append(Item(f"{image.source}#{index}", image.source, obj["name"], "train", box))
    return scan, boxes


def train_box_classifier(
    features: list[str | Path],
    reports: list[str | Path],
    out_dir: str | Path,
    settings: dict,
    vocabulary_size: int = default("classify.vocabulary_size"),
    svm_c: float = default("classify.svm_c"),
    class_weight: str = default("classify.class_weight"),
    seed: int = default("classify.seed"),
) -> dict:
    """Vocabulary, SVM and export of the box classifier into ``out_dir`` (``model.joblib``, ``summary.json``).

    ``settings`` are the exported model's (:func:`artdet.classify.model.settings_from`, plus
    ``crop_padding``). The summary counts the crops per class and the seconds spent, the
    feature extraction of every shard included: a two-stage model's time budget holds them.
    """
    from artdet.classify.calibrate import calibrated
    from artdet.classify.features import read_shards
    from artdet.classify.model import export, fit_vocabulary, train_svm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train = read_shards(features).subset("train")
    if len(train) == 0:
        raise ValueError("no training crops: the train split holds no box (add labelled photos)")
    vocabulary = fit_vocabulary(train, min(vocabulary_size, max(2, len(train.descriptors) // 2)), seed)
    trained = train_svm(train, vocabulary, svm_c, class_weight, settings["colour_weight"], seed)
    settings = calibrated(settings, train, vocabulary, trained)
    export(train, vocabulary, trained, settings, out_dir / "model.joblib")
    train_seconds = time.perf_counter() - start
    shard_reports = [json.loads(Path(r).read_text()) for r in reports]
    feature_seconds = sum(r["seconds"] for r in shard_reports)
    labels, counts = np.unique(train.labels, return_counts=True)
    summary = {
        "crops": len(train),
        "crops_per_class": {str(k): int(v) for k, v in zip(labels, counts, strict=True)},
        "boxes_per_side": {
            side: sum(r["boxes_per_side"][side] for r in shard_reports) for side in ("train", "val", "test")
        },
        "crop_sides": sorted({s for r in shard_reports for s in (i["side"] for i in r["items"])}),
        "dropped": [d for r in shard_reports for d in r["dropped"]],
        "vocabulary_size": len(vocabulary),
        "settings": settings,
        "seconds": {
            "features": round(feature_seconds, 1),
            "train": round(train_seconds, 1),
            "total": round(feature_seconds + train_seconds, 1),
        },
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


class BoxNamer:
    """Names a class-agnostic detector's boxes with an exported classifier (``classifier.joblib``)."""

    def __init__(self, path: str | Path):
        from artdet.classify.model import Classifier

        self.classifier = Classifier(path)
        self.padding = float(self.classifier.settings.get("crop_padding", default("classify.crop_padding")))
        self.top_k = int(self.classifier.settings["top_k"])

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def name(self, image: np.ndarray, boxes: list[tuple[float, float, float, float]], scores: list[float]):
        """Per box, its classes as (class name, detector score x class probability), best first.

        One feature pass per crop and one SVM call for all the boxes of the image. With the
        geometric check on (``classify.box_verify``), a box whose check names no class is
        given none.
        """
        from artdet.classify.features import extract
        from artdet.classify.model import UNKNOWN

        if not boxes:
            return []
        height, width = image.shape[:2]
        pictures = []
        for box in boxes:
            x0, y0, x1, y1 = padded_box(box, width, height, self.padding)
            pictures.append(extract(np.ascontiguousarray(image[y0:y1, x0:x1]), self.classifier.features))
        probabilities = self.classifier.scores(pictures)
        named = []
        for picture, row, score in zip(pictures, probabilities, scores, strict=True):
            if self.classifier.settings.get("verify"):
                decision = self.classifier.decide(picture, row, self.top_k)
                if decision.label == UNKNOWN:
                    named.append([])
                    continue
            order = np.argsort(-row)[: self.top_k]
            named.append([(self.classes[i], float(score) * float(row[i])) for i in order])
        return named
