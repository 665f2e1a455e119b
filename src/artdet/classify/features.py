"""Local and colour features of one picture, and the per-shard feature files.

SIFT keypoints describe small patches in a way that survives a change of scale,
rotation and light, which is what photos of one painting from different places
have in common; colour statistics add what SIFT ignores (it reads grey levels).
SIFT's descriptors are whole numbers from 0 to 255, so they are stored as uint8,
losslessly and at a quarter of the size; the keypoints' positions are kept for
the geometric check at prediction time.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from artdet.classify.dataset import ShardScan, load_rgb
from artdet.defaults import default


@dataclass(frozen=True)
class FeatureSettings:
    """How pictures become features; stored in the model so prediction does the same."""

    max_side: int = default("classify.max_side")
    upscale_to: int = default("classify.upscale_to")
    max_features: int = default("classify.max_features")
    contrast_threshold: float = default("classify.contrast_threshold")

    @classmethod
    def from_dict(cls, values: dict) -> FeatureSettings:
        """The settings stored in a model; models exported before ``contrast_threshold`` used OpenCV's."""
        values = {"contrast_threshold": OPENCV_CONTRAST_THRESHOLD, **values}
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass
class Features:
    """One picture's keypoint positions (N x 2), SIFT descriptors (N x 128, uint8) and colour vector."""

    points: np.ndarray
    descriptors: np.ndarray
    colour: np.ndarray


# SIFT's contrast threshold when none is given (OpenCV's default).
OPENCV_CONTRAST_THRESHOLD = 0.04
_SIFT: dict[tuple[int, float], cv2.SIFT] = {}


def _sift(max_features: int, contrast_threshold: float) -> cv2.SIFT:
    key = (max_features, contrast_threshold)
    if key not in _SIFT:
        _SIFT[key] = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=contrast_threshold)
    return _SIFT[key]


def colour_statistics(rgb: np.ndarray) -> np.ndarray:
    """A 72-bin HSV histogram (8 hues x 3 saturations x 3 values, square-rooted) and Lab means and spreads."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 3, 3], [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32) / 255.0
    return np.concatenate([hist, lab.mean(0), lab.std(0)]).astype(np.float32)


def extract(rgb: np.ndarray, settings: FeatureSettings) -> Features:
    """Features of an RGB picture, resized so that its longest side is within the settings' bounds."""
    h, w = rgb.shape[:2]
    longest = max(h, w)
    scale = min(1.0, settings.max_side / longest) if longest > settings.upscale_to else settings.upscale_to / longest
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    keypoints, descriptors = _sift(settings.max_features, settings.contrast_threshold).detectAndCompute(grey, None)
    if descriptors is None:
        points, descriptors = np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8)
    else:
        points = np.array([k.pt for k in keypoints], np.float32) / scale
        descriptors = np.clip(np.rint(descriptors), 0, 255).astype(np.uint8)
    return Features(points, descriptors, colour_statistics(rgb))


def write_shard(
    scan: ShardScan,
    root: str | Path,
    settings: FeatureSettings,
    out: str | Path,
    report: str | Path,
    extra: dict | None = None,
) -> None:
    """Features of every item of a shard into ``out`` (.npz); items, drops, timing and ``extra`` into ``report``."""
    root = Path(root)
    points, descriptors, colours, offsets = [], [], [], [0]
    no_keypoints = []
    start = time.perf_counter()
    for item in scan.items:
        found = extract(load_rgb(root / item.image, item.box), settings)
        if len(found.descriptors) == 0:
            no_keypoints.append(item.id)
        points.append(found.points)
        descriptors.append(found.descriptors)
        colours.append(found.colour)
        offsets.append(offsets[-1] + len(found.descriptors))
    seconds = time.perf_counter() - start
    np.savez_compressed(
        out,
        points=np.concatenate(points) if points else np.zeros((0, 2), np.float32),
        descriptors=np.concatenate(descriptors) if descriptors else np.zeros((0, 128), np.uint8),
        offsets=np.array(offsets, np.int64),
        colour=np.stack(colours) if colours else np.zeros((0, 78), np.float32),
        ids=np.array([i.id for i in scan.items], dtype=str),
        labels=np.array([i.label for i in scan.items], dtype=str),
        sides=np.array([i.side for i in scan.items], dtype=str),
    )
    body = scan.report()
    body.update(settings=asdict(settings), no_keypoints=no_keypoints, seconds=round(seconds, 3), **(extra or {}))
    Path(report).write_text(json.dumps(body, indent=1) + "\n")


@dataclass
class FeatureSet:
    """The features of many pictures, concatenated from shard files (descriptors per picture by offsets)."""

    points: np.ndarray
    descriptors: np.ndarray
    offsets: np.ndarray
    colour: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    sides: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def of(self, index: int) -> Features:
        a, b = self.offsets[index], self.offsets[index + 1]
        return Features(self.points[a:b], self.descriptors[a:b], self.colour[index])

    def subset(self, side: str) -> FeatureSet:
        """The pictures on one side of the split (``train`` or ``test``)."""
        return self.take(np.flatnonzero(self.sides == side))

    def take(self, keep: np.ndarray) -> FeatureSet:
        """The pictures at the indices ``keep``, in that order."""
        counts = np.diff(self.offsets)
        rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in keep]) if len(keep) else []
        rows = np.asarray(rows, np.int64)
        return FeatureSet(
            self.points[rows],
            self.descriptors[rows],
            np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
            self.colour[keep],
            self.ids[keep],
            self.labels[keep],
            self.sides[keep],
        )


def read_shards(paths: list[str | Path]) -> FeatureSet:
    """All shard files as one :class:`FeatureSet`."""
    parts = [np.load(p) for p in paths]
    offsets, base = [np.zeros(1, np.int64)], 0
    for part in parts:
        offsets.append(part["offsets"][1:] + base)
        base += int(part["offsets"][-1])
    return FeatureSet(
        np.concatenate([p["points"] for p in parts]),
        np.concatenate([p["descriptors"] for p in parts]),
        np.concatenate(offsets),
        np.concatenate([p["colour"] for p in parts]),
        np.concatenate([p["ids"] for p in parts]),
        np.concatenate([p["labels"] for p in parts]),
        np.concatenate([p["sides"] for p in parts]),
    )
