"""Match detections to ground truth (or to another model's detections), box by box.

pycocotools gives the averaged numbers; this module answers the per-box
questions a user asks next: which class is mistaken for which (the confusion
matrix, with a background row and column for false detections and misses),
which images have the most missed boxes, and how many of the SavedModel's
detections an exported (quantised) model still finds.
"""

from __future__ import annotations

import numpy as np

from artdet.data.geometry import Box, iou_matrix

__all__ = ["Box", "iou_matrix"]


def greedy_match(ious: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs (row, col) with IoU >= ``threshold``, highest IoU first."""
    rows, cols = np.nonzero(ious >= threshold)
    order = np.argsort(-ious[rows, cols], kind="stable")
    used_r, used_c, pairs = set(), set(), []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def confusion_matrix(
    ground_truth: list[list[tuple[int, Box]]],
    detections: list[list[tuple[int, float, Box]]],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """Counts [true class, predicted class] over images; index 0 is the background.

    Per image, ground-truth boxes (class_id, box) and detections (class_id,
    score, box) at or above ``score_threshold`` are paired one-to-one by IoU
    regardless of class. A pair counts at [true, predicted]; an unpaired
    ground-truth box is a miss at [true, 0]; an unpaired detection is a false
    detection at [0, predicted]. Class ids run from 1 to ``num_classes``.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=int)
    for truth, found in zip(ground_truth, detections, strict=True):
        found = [d for d in found if d[1] >= score_threshold]
        pairs = greedy_match(iou_matrix([t[1] for t in truth], [d[2] for d in found]), iou_threshold)
        for t, d in pairs:
            matrix[truth[t][0], found[d][0]] += 1
        paired_t, paired_d = {t for t, _ in pairs}, {d for _, d in pairs}
        for t, (cls, _) in enumerate(truth):
            if t not in paired_t:
                matrix[cls, 0] += 1
        for d, (cls, _, _) in enumerate(found):
            if d not in paired_d:
                matrix[0, cls] += 1
    return matrix


def image_errors(
    truth: list[tuple[int, Box]],
    found: list[tuple[int, float, Box]],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> tuple[int, int]:
    """(missed ground-truth boxes, false detections) of one image; a match needs the same class."""
    found = [d for d in found if d[1] >= score_threshold]
    matched = 0
    for cls in {t[0] for t in truth} | {d[0] for d in found}:
        t_boxes = [t[1] for t in truth if t[0] == cls]
        d_boxes = [d[2] for d in found if d[0] == cls]
        matched += len(greedy_match(iou_matrix(t_boxes, d_boxes), iou_threshold))
    return len(truth) - matched, len(found) - matched


def found_share(
    reference: list[list[tuple[int, float, Box]]],
    other: list[list[tuple[int, float, Box]]],
    min_score: float = 0.1,
    margin: float = 0.05,
    iou_threshold: float = 0.5,
) -> dict:
    """The share of the reference model's detections (score >= ``min_score``) that the other model finds.

    Every reference detection counts, of every class: where the SavedModel
    answers "duchess 0.55" and "queen 0.45" for one painting, an export that
    keeps only one of them has lost an answer, and AP pays for it. A
    detection is found when the other model has one of the same class with
    IoU >= ``iou_threshold`` and a score of at least ``min_score - margin``
    (a quantised model's scores move a little). The threshold is low on
    purpose: the second guesses on which the metric turns sit well below 0.5.
    """
    total = found = 0
    for ref, oth in zip(reference, other, strict=True):
        ref = [d for d in ref if d[1] >= min_score]
        oth = [d for d in oth if d[1] >= min_score - margin]
        total += len(ref)
        for cls, _, box in ref:
            candidates = [d[2] for d in oth if d[0] == cls]
            if candidates and iou_matrix([box], candidates).max() >= iou_threshold:
                found += 1
    return {
        "reference_detections": total,
        "matched": found,
        "share": round(found / total, 4) if total else None,
        "min_score": min_score,
        "margin": margin,
        "iou_threshold": iou_threshold,
    }
