"""Rank the labels that are probably wrong, from predictions of models that did not train on them.

Each labelled image has its labels (the XML's boxes, as validated) and the detections of the fold
model that never saw it (:mod:`artdet.data.folds`). Where the two disagree, the label is put in
doubt. Four kinds of issue, each with the fix a person would make in LabelImg:

- ``class``: a box probably of another class (the model finds the object, confidently, as
  another class): rename it;
- ``location``: a box probably off its object (the model finds the object of that class, but
  the box covers it badly): move it to the predicted box;
- ``spurious``: a box where there is nothing (no prediction of any class on it): delete it;
- ``missing``: an object with no box (a confident prediction that no label covers): add it.

Two scorers rank them, on the same predictions:

- ``cleanlab``: cleanlab's object-detection scores (swap, badly located, overlooked;
  :mod:`cleanlab.object_detection.rank`), with its probability thresholds set from the scores
  our detectors give (``high_score``, ``low_score``) instead of its defaults (0.95 and 0.5, which
  a detector trained for minutes on a CPU seldom reaches). cleanlab has no score for a box on
  nothing (it scores such a box 1.0, "fine"), so the spurious kind comes from the scorer below.
- ``artdet``: the same four questions asked directly: how confident the model is in what it
  finds there, and how far that is from the label; "nothing there" and "something unlabelled"
  weighed by how much the models can be believed on that (:func:`reliability`).

Every issue has a ``suspicion`` in [0, 1] (1: surely wrong); both scorers rank by it.
``bench/review.py`` measures both on injected errors: cleanlab's found more swapped and shifted
boxes on BCCD, ours more removed ones; cleanlab's is the default.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from artdet.data.geometry import iou_matrix

KINDS = ("class", "location", "spurious", "missing")
SCORERS = ("cleanlab", "artdet")
# Predictions from this score on take part (the fold models are asked for everything from here).
PREDICTION_FLOOR = 0.05
# A prediction and a label this close (IoU) are the same object.
SAME_OBJECT_IOU = 0.5


@dataclass
class ReviewImage:
    """One labelled image: its labels and the held-out predictions, in the upright photo's pixels."""

    source: str
    annotation: str | None
    width: int
    height: int
    orientation: int
    fold: int
    # (xml object index, class name, box)
    labels: list[tuple[int, str, tuple[float, float, float, float]]] = field(default_factory=list)
    # (class name, score, box)
    predictions: list[tuple[str, float, tuple[float, float, float, float]]] = field(default_factory=list)


@dataclass
class LabelIssue:
    """One suspected error: an image's label box (``object`` its XML index) or an unlabelled prediction."""

    image: str
    annotation: str | None
    object: int | None
    kind: str
    label: str | None
    box: tuple[float, float, float, float]
    suggestion: str
    suggested_class: str | None
    suggested_box: tuple[float, float, float, float] | None
    suspicion: float


def _predictions_of(image: ReviewImage) -> tuple[list[str], np.ndarray, list[tuple]]:
    kept = [p for p in image.predictions if p[1] >= PREDICTION_FLOOR]
    return [p[0] for p in kept], np.array([p[1] for p in kept], dtype=float), [p[2] for p in kept]


def _round(box) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 1) for v in box)  # type: ignore[return-value]


def _label_issue(image, index, name, box, kind, suspicion, names, boxes, j) -> LabelIssue:
    """The issue of one label box; ``j`` is the prediction that speaks against it (None: nothing there)."""
    if kind == "class":
        suggestion, cls, fix = f"rename to {names[j]}", names[j], None
    elif kind == "location":
        suggestion, cls, fix = "move the box to the predicted one", None, _round(boxes[j])
    else:
        suggestion, cls, fix = "delete the box: the model finds nothing there", None, None
    return LabelIssue(
        image.source, image.annotation, index, kind, name, _round(box), suggestion, cls, fix, round(suspicion, 4)
    )


def _missing_issue(image, name, box, suspicion) -> LabelIssue:
    return LabelIssue(
        image.source,
        image.annotation,
        None,
        "missing",
        None,
        _round(box),
        f"add a {name} box",
        name,
        _round(box),
        round(suspicion, 4),
    )


def reliability(images: list[ReviewImage], high: float, low: float) -> tuple[float, float]:
    """How far the held-out models can be believed: (recall, precision) against the labels as they are.

    Recall: the share of label boxes with a prediction of their class on them (score >= ``low``);
    precision: the share of confident predictions (score >= ``high``) on a label box. A model
    that finds few of the labelled boxes says little when it finds nothing on one (``spurious``),
    one with many unlabelled predictions little when it finds something unlabelled (``missing``):
    those two doubts are weighed by them. Label errors lower both a little; a weak model, a lot.
    """
    found = total = confirmed = confident = 0
    for image in images:
        names, scores, boxes = _predictions_of(image)
        label_boxes = [b for _, _, b in image.labels]
        if not label_boxes or not boxes:
            total += len(label_boxes)
            confident += int((scores >= high).sum())
            continue
        ious = iou_matrix(label_boxes, boxes)
        for row, (_, name, _) in enumerate(image.labels):
            total += 1
            same = np.array([n == name for n in names]) & (scores >= low) & (ious[row] >= SAME_OBJECT_IOU)
            found += bool(same.any())
        for j in np.flatnonzero(scores >= high):
            confident += 1
            confirmed += bool(ious[:, j].max() >= SAME_OBJECT_IOU)
    return (found / total if total else 1.0), (confirmed / confident if confident else 1.0)


def _score_artdet(
    image: ReviewImage, high: float, low: float, recall: float = 1.0, precision: float = 1.0
) -> list[LabelIssue]:
    """Per label: the strongest of the three doubts; per prediction on no label: how sure it is."""
    names, scores, boxes = _predictions_of(image)
    label_boxes = [b for _, _, b in image.labels]
    ious = iou_matrix(label_boxes, boxes) if label_boxes and boxes else np.zeros((len(label_boxes), len(boxes)))
    issues, placed = [], set()
    for row, (index, name, box) in enumerate(image.labels):
        same = np.array([n == name for n in names], dtype=bool)
        overlap = ious[row] if len(boxes) else np.zeros(0)
        doubts: list[tuple[float, str, int | None]] = []
        # class: another class found on this object, and this class not (or less).
        other = (~same) & (overlap >= SAME_OBJECT_IOU)
        if other.any():
            j = int(np.flatnonzero(other)[np.argmax(scores[other])])
            mine = scores[same & (overlap >= SAME_OBJECT_IOU)].max(initial=0.0)
            doubts.append((max(0.0, scores[j] - mine), "class", j))
        # location: this class found here, confidently, but the label covers it badly.
        near = same & (overlap > 0) & (scores >= low)
        if near.any():
            candidates = np.flatnonzero(near)
            j = int(candidates[np.argmax(overlap[candidates] * scores[candidates])])
            doubts.append((scores[j] * (1.0 - overlap[j]) if overlap[j] < SAME_OBJECT_IOU else 0.0, "location", j))
        # spurious: nothing of any class found on the box.
        on_it = overlap >= 0.3 * SAME_OBJECT_IOU
        doubts.append(((1.0 - float(scores[on_it].max(initial=0.0))) * recall, "spurious", None))
        suspicion, kind, j = max(doubts, key=lambda d: d[0])
        if kind == "location":
            placed.add(j)  # the box to move to: not also an object with no box
        issues.append(_label_issue(image, index, name, box, kind, suspicion, names, boxes, j))
    for j, (name, score, box) in enumerate(zip(names, scores, boxes, strict=True)):
        covered = ious[:, j].max(initial=0.0) if label_boxes else 0.0
        if score >= low and covered < SAME_OBJECT_IOU and j not in placed:
            issues.append(_missing_issue(image, name, box, float(score) * (1.0 - covered) * precision))
    return issues


def _score_cleanlab(images: list[ReviewImage], classes: list[str], high: float, low: float) -> list[LabelIssue]:
    """cleanlab's swap, badly-located and overlooked scores (lower: more likely wrong), as suspicions."""
    from cleanlab.object_detection import rank

    ids = {name: i for i, name in enumerate(classes)}
    labels, predictions = [], []
    for image in images:
        labels.append(
            {
                "bboxes": np.array([b for _, _, b in image.labels], dtype=np.float32).reshape(-1, 4),
                "labels": np.array([ids[n] for _, n, _ in image.labels], dtype=int),
            }
        )
        per_class = [np.zeros((0, 5), dtype=np.float32) for _ in classes]
        names, scores, boxes = _predictions_of(image)
        for name, score, box in zip(names, scores, boxes, strict=True):
            per_class[ids[name]] = np.vstack([per_class[ids[name]], np.array([[*box, score]], dtype=np.float32)])
        predictions.append(per_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        swap = rank.compute_swap_box_scores(labels=labels, predictions=predictions, high_probability_threshold=high)
        badloc = rank.compute_badloc_box_scores(labels=labels, predictions=predictions, low_probability_threshold=low)
        overlooked = rank.compute_overlooked_box_scores(
            labels=labels, predictions=predictions, high_probability_threshold=high
        )
    recall, precision = reliability(images, high, low)
    ours = {image.source: _score_artdet(image, high, low, recall, precision) for image in images}
    issues = []
    for i, image in enumerate(images):
        # cleanlab orders predictions by class, then as given: the same order as per_class above.
        flat = [(classes[k], float(row[4]), tuple(row[:4])) for k, rows in enumerate(predictions[i]) for row in rows]
        names = [p[0] for p in flat]
        boxes = [p[2] for p in flat]
        label_boxes = [b for _, _, b in image.labels]
        ious = iou_matrix(label_boxes, boxes) if label_boxes and boxes else np.zeros((len(label_boxes), len(boxes)))
        spurious = {issue.object: issue for issue in ours[image.source] if issue.kind == "spurious"}
        for row, (index, name, box) in enumerate(image.labels):
            doubts = [(1.0 - float(swap[i][row]), "class"), (1.0 - float(badloc[i][row]), "location")]
            suspicion, kind = max(doubts)
            if index in spurious and spurious[index].suspicion > suspicion:
                issues.append(spurious[index])
                continue
            j = None
            if boxes:
                # The prediction that speaks against the label: for a class, the surest other class on
                # the object (the closest box when none overlaps enough); for a location, the closest box.
                other = [k for k in range(len(boxes)) if (names[k] != name) == (kind == "class")]
                on_it = [k for k in other if ious[row, k] >= SAME_OBJECT_IOU]
                if kind == "class" and on_it:
                    j = max(on_it, key=lambda k: flat[k][1])
                else:
                    j = max(other, key=lambda k: ious[row, k]) if other else None
            if j is None:
                kind = "spurious"
            issues.append(_label_issue(image, index, name, box, kind, suspicion, names, boxes, j))
        for j, score in enumerate(overlooked[i]):
            if not np.isnan(score):
                issues.append(_missing_issue(image, names[j], boxes[j], 1.0 - float(score)))
    return issues


def rank_issues(
    images: list[ReviewImage], classes: list[str], scorer: str = "cleanlab", high: float = 0.5, low: float = 0.2
) -> list[LabelIssue]:
    """Every label box and every unlabelled confident prediction as an issue, most suspicious first.

    ``high``: a prediction this confident can name a box's class or an object with no box;
    ``low``: a prediction this confident can say where a box of its class should be.
    """
    if scorer not in SCORERS:
        raise ValueError(f"review scorer {scorer!r}: use one of {', '.join(SCORERS)}")
    if scorer == "cleanlab":
        issues = _score_cleanlab(images, classes, high, low)
    else:
        recall, precision = reliability(images, high, low)
        issues = [issue for image in images for issue in _score_artdet(image, high, low, recall, precision)]
    return sorted(issues, key=lambda i: (-i.suspicion, i.image, i.object if i.object is not None else -1))
