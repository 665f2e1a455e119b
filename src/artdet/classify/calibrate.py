"""The geometric check's ``min_inliers``, fitted on the user's own training pictures, never on the test side.

The check calls a photo unknown unless one of its best classes' reference pictures matches it
through a homography with ``min_inliers`` inliers. How many inliers a known photo reaches
depends on the collection (a flat painting photographed square-on: dozens; a playing card
under a lamp, a cell: a few), so one number chosen on our demo rejected a quarter of a user's
known cards. ``min_inliers: auto`` fits it at export:

1. The training pictures are split into ``FOLDS`` parts; for each part an SVM and reference
   pictures are made from the other parts (as the model makes them from all), and each held-out
   picture gets the inlier count the check would see: the most over its best classes.
2. Without unseen pictures: the largest ``min_inliers`` that keeps at least ``KEEP_KNOWN`` of the
   held-out known pictures (a check that costs at most 2% of them, and rejects as much as it can).
3. With unseen pictures (``classify: unseen``): half of them (by a hash of their path) are
   counted the same way, and among the values that keep ``KEEP_KNOWN`` of the known pictures,
   the one with the most known kept plus unseen rejected. The other half is left to the
   evaluation, which reports the share it rejects on pictures that chose nothing.

The model records the operating point (``settings["calibration"]``).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from artdet.classify.features import FeatureSet

log = logging.getLogger(__name__)

# The share of held-out known pictures the check must keep.
KEEP_KNOWN = 0.98
FOLDS = 3
# The fewest inliers a homography can have (four point pairs); below it the check means nothing.
LOWEST = 4


def unseen_half(path: str | Path, part: str) -> bool:
    """Whether an unseen picture is in the ``calibration`` or the ``evaluation`` half (by a hash of its name)."""
    digest = int(hashlib.sha1(f"unseen:{Path(path).name}".encode()).hexdigest(), 16)
    return (digest % 2 == 0) == (part == "calibration")


def _take(features: FeatureSet, keep: np.ndarray) -> FeatureSet:
    counts = np.diff(features.offsets)
    rows = [np.arange(features.offsets[i], features.offsets[i + 1]) for i in keep]
    rows = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    return FeatureSet(
        features.points[rows],
        features.descriptors[rows],
        np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
        features.colour[keep],
        features.ids[keep],
        features.labels[keep],
        features.sides[keep],
    )


def _most_inliers(classifier, picture) -> int:
    """The inlier count the check decides on: the most over the picture's best classes."""
    from artdet.classify.model import VERIFY_CANDIDATES

    scores = classifier.scores([picture])[0]
    return max(
        (classifier.inliers(picture, classifier.classes[i]) for i in np.argsort(-scores)[:VERIFY_CANDIDATES]),
        default=0,
    )


def held_out_counts(train: FeatureSet, vocabulary: np.ndarray, bundle_of, unseen: list | None = None, seed: int = 0):
    """Inlier counts of every training picture from a model that did not train on it (and of ``unseen`` pictures).

    ``bundle_of(features)`` makes a model bundle from a part of the training pictures (the SVM and
    references as the export makes them). The unseen pictures' features are counted against the
    first fold's model.
    """
    from artdet.classify.model import Classifier

    rng = np.random.default_rng(seed)
    folds = np.arange(len(train)) % FOLDS
    rng.shuffle(folds)
    known = np.zeros(len(train), dtype=int)
    unseen_counts: list[int] = []
    for k in range(FOLDS):
        held = np.flatnonzero(folds == k)
        rest = np.flatnonzero(folds != k)
        if not len(held) or len(set(train.labels[rest].tolist())) < 2:
            continue
        classifier = Classifier(bundle_of(_take(train, rest)))
        for i in held:
            known[i] = _most_inliers(classifier, train.of(int(i)))
        if k == 0 and unseen:
            unseen_counts = [_most_inliers(classifier, picture) for picture in unseen]
    return known, np.asarray(unseen_counts, dtype=int)


def choose(known: np.ndarray, unseen: np.ndarray) -> dict:
    """The fitted ``min_inliers`` and what it keeps and rejects on the held-out pictures (see the module)."""
    candidates = range(LOWEST, max(int(known.max(initial=0)), LOWEST) + 1)
    kept = {m: float(np.mean(known >= m)) if len(known) else 1.0 for m in candidates}
    feasible = [m for m in candidates if kept[m] >= KEEP_KNOWN] or [LOWEST]
    if len(unseen):
        rejected = {m: float(np.mean(unseen < m)) for m in candidates}
        best = max(feasible, key=lambda m: (kept[m] + rejected[m], m))
    else:
        best = max(feasible)
    point = {
        "min_inliers": int(best),
        "rule": (
            f"the most known kept plus unseen rejected, keeping >= {KEEP_KNOWN:.0%} of known"
            if len(unseen)
            else f"the largest that keeps >= {KEEP_KNOWN:.0%} of held-out known pictures"
        ),
        "known_pictures": len(known),
        "known_kept": round(kept.get(best, 1.0), 4),
        "known_inliers_median": float(np.median(known)) if len(known) else None,
    }
    if len(unseen):
        point.update(unseen_pictures=len(unseen), unseen_rejected=round(float(np.mean(unseen < best)), 4))
    if kept.get(best, 1.0) < KEEP_KNOWN:
        log.warning(
            "calibration | even min_inliers %d keeps only %.0f%% of held-out known pictures: the check costs "
            "more than %.0f%% here; consider classify: verify: false",
            best,
            100 * kept[best],
            100 * (1 - KEEP_KNOWN),
        )
    return point


def calibrated(
    settings: dict, train: FeatureSet, vocabulary: np.ndarray, trained: dict, unseen: str | Path | None = None
) -> dict:
    """``settings`` with ``min_inliers: auto`` fitted (see the module); as they are for a number, or no check.

    ``trained`` is the SVM the model exports (its C, class weight and seed retrain each fold);
    ``unseen`` a folder of photos of works not in the collection, whose calibration half is used.
    """
    from artdet.classify.dataset import load_rgb
    from artdet.classify.features import FeatureSettings, extract
    from artdet.classify.model import make_bundle, train_svm
    from artdet.data.dataset import IMAGE_SUFFIXES

    if settings.get("min_inliers") != "auto" or not settings.get("verify"):
        return settings
    svm = trained["svm"]
    class_weight = "none" if svm.class_weight is None else "balanced"

    def bundle_of(part: FeatureSet) -> dict:
        fold = train_svm(part, vocabulary, svm.C, class_weight, settings["colour_weight"], svm.random_state or 0)
        return make_bundle(part, vocabulary, fold, {**settings, "min_inliers": LOWEST})

    pictures = []
    if unseen:
        files = sorted(p for p in Path(unseen).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        feature_settings = FeatureSettings.from_dict(settings)
        pictures = [extract(load_rgb(f), feature_settings) for f in files if unseen_half(f, "calibration")]
    known, strangers = held_out_counts(train, vocabulary, bundle_of, pictures)
    point = choose(known, strangers)
    log.info(
        "calibration | min_inliers %d: keeps %.1f%% of %d held-out known pictures%s (%s)",
        point["min_inliers"],
        100 * point["known_kept"],
        point["known_pictures"],
        f", rejects {100 * point['unseen_rejected']:.1f}% of {point['unseen_pictures']} unseen" if pictures else "",
        point["rule"],
    )
    return {**settings, "min_inliers": point["min_inliers"], "calibration": point}
