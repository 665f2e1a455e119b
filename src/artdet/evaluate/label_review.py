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

Every issue's doubt is measured on its own scale (how sure the other class is, how far the
found object lies from the box, how little is found on it, how sure the unlabelled prediction
is), then ranked by how rare a doubt that strong is: ``suspicion`` = 1 - (how many labels have
a doubt of that kind at least as strong) / (labels); for a missing box, the same share among
all the model's finds (labelled or not, each as score x (1 - its best IoU with a label)). A doubt that a weak model
casts on a third of the true boxes ("nothing found here") ranks no higher than 0.67, and the
four kinds interleave by evidence, not by the scale of their scores.

Two scorers give the class and location doubts, on the same predictions:

- ``cleanlab``: cleanlab's object-detection swap and badly-located scores
  (:mod:`cleanlab.object_detection.rank`), with its probability thresholds set from the scores
  our detectors give (``high_score``, ``low_score``) instead of its defaults (0.95 and 0.5, which
  a detector trained for minutes on a CPU seldom reaches). cleanlab has no score for a box on
  nothing (it scores such a box 1.0, "fine"), and its overlooked score leaves out every
  prediction that touches a label (most, in a dense scene), so those two come from ours.
- ``artdet``: the four questions asked directly: how much surer another class is on the object;
  how confidently the label's class is found nearby, covering the box badly, at the box's size
  (a box off its object has the object's size elsewhere; a prediction of another size says more
  about a short-trained model's loose extents); how little of anything is found on the box; how
  sure an unlabelled prediction is.

``bench/review.py`` measures both on injected errors (BENCHMARKS.md, section ``review``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from artdet.data.geometry import iou_matrix

KINDS = ("class", "location", "spurious", "missing")
SCORERS = ("artdet", "cleanlab")  # the first is the default (review: scorer)
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


def _same_shape(a: tuple, b: tuple) -> float:
    """The IoU of two boxes moved onto the same centre: 1 for equal sizes, 1/3 when one is 3x the other.

    A box off its object has the object's size somewhere else; a prediction of another size says
    more about the model's extents (often loose after a short training) than about the label.
    """
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    inter = min(wa, wb) * min(ha, hb)
    union = wa * ha + wb * hb - inter
    return inter / union if union > 0 else 0.0


def _label_ious(image: ReviewImage, boxes: list[tuple]) -> np.ndarray:
    """IoU of each label box (rows) with each prediction (columns); zeros when either side is empty."""
    label_boxes = [b for _, _, b in image.labels]
    return iou_matrix(label_boxes, boxes) if label_boxes and boxes else np.zeros((len(label_boxes), len(boxes)))


def _doubts_artdet(image: ReviewImage, low: float) -> tuple[list[dict], dict[int, float], list[float]]:
    """Per label, each doubt as (strength, the prediction behind it); per unlabelled prediction, its strength;
    and the strength of every find from ``low`` on, labelled or not (what a missing box is ranked against).

    - class: another class found on the object, more surely than the label's class;
    - location: the label's class found, overlapping the box but covering it badly (IoU < 0.5);
    - spurious: nothing of any class found on the box;
    - missing: a prediction (score >= ``low``) that no label covers at IoU >= 0.5.
    """
    names, scores, boxes = _predictions_of(image)
    ious = _label_ious(image, boxes)
    per_label = []
    for row, (_, name, _) in enumerate(image.labels):
        same = np.array([n == name for n in names], dtype=bool)
        overlap = ious[row]
        doubts: dict[str, tuple[float, int | None]] = {}
        other = (~same) & (overlap >= SAME_OBJECT_IOU)
        if other.any():
            j = int(np.flatnonzero(other)[np.argmax(scores[other])])
            mine = scores[same & (overlap >= SAME_OBJECT_IOU)].max(initial=0.0)
            doubts["class"] = (max(0.0, float(scores[j] - mine)), j)
        near = same & (overlap > 0) & (scores >= low)
        if near.any():
            candidates = np.flatnonzero(near)
            j = int(candidates[np.argmax(overlap[candidates] * scores[candidates])])
            located = 0.0
            if overlap[j] < SAME_OBJECT_IOU:
                located = float(scores[j] * (1.0 - overlap[j])) * _same_shape(image.labels[row][2], boxes[j])
            doubts["location"] = (located, j)
        on_it = overlap >= 0.3 * SAME_OBJECT_IOU
        doubts["spurious"] = (1.0 - float(scores[on_it].max(initial=0.0)), None)
        per_label.append(doubts)
    missing, finds = {}, []
    for j, score in enumerate(scores):
        if score < low:
            continue
        covered = float(ious[:, j].max(initial=0.0))
        finds.append(float(score) * (1.0 - covered))
        if covered < SAME_OBJECT_IOU:
            missing[j] = finds[-1]
    return per_label, missing, finds


def _rarity(reference: list[float]):
    """How rare a doubt this strong is: the share of ``reference`` strictly below it (0: common, ->1: rarest).

    Doubts of different kinds come on different scales (a weak model finds nothing on many true
    boxes; a confident unlabelled prediction is rare): ranked by rarity they interleave fairly,
    and a doubt that many labels share (nothing found on 30% of them) ranks no higher than 0.7.
    """
    ordered = np.sort(np.asarray(reference, dtype=float))

    def of(value: float) -> float:
        return float(np.searchsorted(ordered, value, side="left")) / len(ordered) if len(ordered) else 0.0

    return of


def _issues_by_rarity(
    images: list[ReviewImage],
    label_doubts: list[list[dict]],
    missing: list[dict[int, float]],
    finds: list[float],
) -> list[LabelIssue]:
    """Each label's rarest doubt, and each unlabelled prediction, as issues with their rarity as suspicion."""
    kinds = ("class", "location", "spurious")
    rarity = {k: _rarity([d.get(k, (0.0, None))[0] for doubts in label_doubts for d in doubts]) for k in kinds}
    rarity["missing"] = _rarity(finds)
    issues = []
    for image, doubts, unlabelled in zip(images, label_doubts, missing, strict=True):
        names, _, boxes = _predictions_of(image)
        placed = set()
        for (index, name, box), doubt in zip(image.labels, doubts, strict=True):
            # The rarest doubt; on a tie (every doubt common), the order of ``kinds``.
            kind = max(kinds, key=lambda k: (rarity[k](doubt[k][0]) if k in doubt else -1.0, -kinds.index(k)))
            value, j = doubt[kind]
            if kind == "location":
                placed.add(j)  # the box to move to: not also an object with no box
            issues.append(_label_issue(image, index, name, box, kind, rarity[kind](value), names, boxes, j))
        for j, value in unlabelled.items():
            if j not in placed:
                issues.append(_missing_issue(image, names[j], boxes[j], rarity["missing"](value)))
    return issues


def _score_artdet(images: list[ReviewImage], low: float) -> list[LabelIssue]:
    found = [_doubts_artdet(image, low) for image in images]
    return _issues_by_rarity(images, [f[0] for f in found], [f[1] for f in found], [v for f in found for v in f[2]])


def _score_cleanlab(images: list[ReviewImage], classes: list[str], high: float, low: float) -> list[LabelIssue]:
    """cleanlab's swap and badly-located scores (lower: more likely wrong) as the class and location doubts;
    nothing-there and missing from :func:`_doubts_artdet` (cleanlab has no score for the first, and its
    overlooked score leaves out every prediction touching a label, as most do in a dense scene)."""
    from cleanlab.object_detection import rank

    ids = {name: i for i, name in enumerate(classes)}
    labels, predictions, ordered = [], [], []
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
        # Our predictions in cleanlab's order (by class, then as given), so a doubt's prediction index is ours.
        order = sorted(range(len(names)), key=lambda k: ids[names[k]])
        ordered.append(
            ReviewImage(
                image.source,
                image.annotation,
                image.width,
                image.height,
                image.orientation,
                image.fold,
                image.labels,
                [(names[k], float(scores[k]), boxes[k]) for k in order],
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        swap = rank.compute_swap_box_scores(labels=labels, predictions=predictions, high_probability_threshold=high)
        badloc = rank.compute_badloc_box_scores(labels=labels, predictions=predictions, low_probability_threshold=low)
    label_doubts, missing, finds = [], [], []
    for i, image in enumerate(ordered):
        ours, unlabelled, strengths = _doubts_artdet(image, low)
        finds += strengths
        names, scores, boxes = _predictions_of(image)
        ious = _label_ious(image, boxes)
        doubts = []
        for row, (_, name, _) in enumerate(image.labels):
            d = {"spurious": ours[row]["spurious"]}
            if boxes:
                # The prediction behind a class doubt: the surest other class on the object (else the
                # closest other-class box); behind a location doubt: the closest box of the class.
                other = [k for k in range(len(boxes)) if names[k] != name]
                mine = [k for k in range(len(boxes)) if names[k] == name]
                on_it = [k for k in other if ious[row, k] >= SAME_OBJECT_IOU]
                if on_it:
                    d["class"] = (1.0 - float(swap[i][row]), max(on_it, key=lambda k: scores[k]))
                elif other:
                    d["class"] = (1.0 - float(swap[i][row]), max(other, key=lambda k: ious[row, k]))
                if mine:
                    d["location"] = (1.0 - float(badloc[i][row]), max(mine, key=lambda k: ious[row, k]))
            doubts.append(d)
        label_doubts.append(doubts)
        missing.append(unlabelled)
    return _issues_by_rarity(ordered, label_doubts, missing, finds)


def rank_issues(
    images: list[ReviewImage], classes: list[str], scorer: str = SCORERS[0], high: float = 0.5, low: float = 0.2
) -> list[LabelIssue]:
    """Every label box and every unlabelled confident prediction as an issue, most suspicious first.

    ``high``: cleanlab's swap score counts a prediction this confident of another class;
    ``low``: a prediction this confident can say where a box of its class should be, or that one is missing.
    """
    if scorer not in SCORERS:
        raise ValueError(f"review scorer {scorer!r}: use one of {', '.join(SCORERS)}")
    issues = _score_cleanlab(images, classes, high, low) if scorer == "cleanlab" else _score_artdet(images, low)
    return sorted(issues, key=lambda i: (-i.suspicion, i.image, i.object if i.object is not None else -1))
