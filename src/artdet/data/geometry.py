"""Box geometry shared by the layers above: evaluation matches boxes, pre-labelling merges them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = Sequence[float]  # xmin, ymin, xmax, ymax in pixels


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``: shape [len(a), len(b)]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, b = np.asarray(a, float)[:, None, :], np.asarray(b, float)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
