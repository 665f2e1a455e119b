"""The score threshold a model is used at, fitted on the val split: best F1 of what a user sees.

AP summarises every threshold; a user of ``artdet detect``, the HTTP API or the web page sees
one. A fixed 0.3 suits one model and not another (a two-stage model's score is the detector's
score times a class probability, so its scores run lower), so each exported model carries the
threshold at which its boxes, as a person sees them, best balance precision and recall on the
val split (:func:`fit`), in ``operating_point.json`` beside it. The test evaluation then reports
precision, recall and F1 at that stored threshold (:func:`at_threshold`): a figure on data that
did not choose it.

"As a person sees them": each box once, with its best class (:func:`~artdet.deploy.runtime.one_per_box`),
matched to a ground-truth box of the same class at IoU >= 0.5, greedily from the highest score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from artdet.data.geometry import iou_matrix
from artdet.deploy.runtime import OPERATING_POINT_FILE

Found = list[tuple[int, float, tuple]]  # (class_id, score, box) of one image
Truth = list[tuple[int, tuple]]  # (class_id, box) of one image


def _best_per_box(found: Found) -> Found:
    """Each box once with its best class: what detect, serve and the web page show."""
    best: dict[tuple, tuple[int, float, tuple]] = {}
    for cls, score, box in found:
        key = tuple(round(float(v), 2) for v in box)
        if key not in best or score > best[key][1]:
            best[key] = (cls, score, box)
    return list(best.values())


def _scored_matches(truths: list[Truth], founds: list[Found], iou: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Every shown box's score and whether it matched, highest score first; and the ground-truth count.

    Matching goes from the highest score down, so whether a box matches does not depend on any
    box below it: the counts at a threshold are those of the list cut at that threshold.
    """
    scores, hits = [], []
    for truth, found in zip(truths, founds, strict=True):
        shown = sorted(_best_per_box(found), key=lambda d: -d[1])
        ious = iou_matrix([t[1] for t in truth], [d[2] for d in shown]) if truth and shown else None
        used: set[int] = set()
        for j, (cls, score, _) in enumerate(shown):
            hit = False
            if ious is not None:
                candidates = [i for i, t in enumerate(truth) if t[0] == cls and i not in used and ious[i, j] >= iou]
                if candidates:
                    used.add(max(candidates, key=lambda i: ious[i, j]))
                    hit = True
            scores.append(score)
            hits.append(hit)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    total = sum(len(t) for t in truths)
    return np.asarray(scores, dtype=float)[order], np.asarray(hits, dtype=bool)[order], total


def _counts(tp: int, shown: int, total: int) -> dict:
    precision = tp / shown if shown else 0.0
    recall = tp / total if total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "true_positives": int(tp),
        "false_positives": int(shown - tp),
        "missed": int(total - tp),
    }


def fit(truths: list[Truth], founds: list[Found], iou: float = 0.5, fallback: float = 0.3) -> dict:
    """The threshold with the best F1 on these images (the val split), with its precision and recall.

    Candidates are the scores of the shown boxes; among equal F1 the highest threshold wins (fewer
    boxes, the same balance). With no box found or no ground truth, ``fallback`` is kept and
    ``fitted`` is false.
    """
    scores, hits, total = _scored_matches(truths, founds, iou)
    if not len(scores) or not total:
        return {"min_score": fallback, "fitted": False, "iou": iou, "images": len(truths), "boxes": total}
    tp = np.cumsum(hits)
    shown = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (shown + total)  # 2PR/(P+R) with P = tp/shown, R = tp/total
    # A cut is only a threshold after the last box of equal score.
    last_of_score = np.append(scores[1:] != scores[:-1], True)
    f1 = np.where(last_of_score, f1, -1.0)
    best = float(f1.max())
    k = int(np.flatnonzero(f1 >= best - 1e-12)[0])  # the first (highest score) of the best
    return {
        # Not rounded: a threshold rounded up would leave out the box it was cut at.
        "min_score": float(scores[k]),
        "fitted": True,
        "iou": iou,
        "images": len(truths),
        "boxes": total,
        **_counts(int(tp[k]), k + 1, total),
    }


def at_threshold(truths: list[Truth], founds: list[Found], min_score: float, iou: float = 0.5) -> dict:
    """Precision, recall and F1 of the shown boxes with score >= ``min_score``."""
    scores, hits, total = _scored_matches(truths, founds, iou)
    keep = scores >= min_score
    return {"min_score": min_score, "iou": iou, **_counts(int(hits[keep].sum()), int(keep.sum()), total)}


def write(point: dict, path: str | Path, source: str) -> Path:
    """Store ``point`` as JSON at ``path`` (``source`` says where it was fitted)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**point, "source": source}, indent=2) + "\n")
    return path


def beside(model_folder: str | Path) -> Path:
    """Where a model's operating point lies: in the SavedModel folder, beside a .tflite file."""
    return Path(model_folder) / OPERATING_POINT_FILE
