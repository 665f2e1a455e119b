"""The geometric check's ``min_inliers``, fitted on the user's own training pictures, never on the test side.

The check calls a photo unknown unless one of its best classes' reference pictures matches it
through a homography with ``min_inliers`` inliers. How many inliers a known photo reaches
depends on the collection (a flat painting photographed square-on: dozens; a playing card
under a lamp, a cell: a few), so one number chosen on our demo rejected a quarter of a user's
known cards. ``min_inliers: auto`` fits it at export:

1. The training pictures are split into ``FOLDS`` parts; for each part an SVM and reference
   pictures are made from the other parts (as the model makes them from all), and each held-out
   picture the SVM names right gets its inlier count with that class (what the check decides
   on; a picture the SVM names wrongly is wrong with the check or without, and costs nothing).
2. Without unseen pictures: the largest ``min_inliers`` that keeps at least ``KEEP_KNOWN`` of
   those held-out pictures (a check that costs at most 2% of them, and rejects as much as it can).
3. With unseen pictures (``classify: unseen``): half of them (by a hash of their path) are
   counted the same way, and among the values that keep ``KEEP_KNOWN`` of the known pictures,
   the one with the most known kept plus unseen rejected. The other half is left to the
   evaluation, which reports the share it rejects on pictures that chose nothing.

``unknown_threshold: auto`` (on the SVM's best score) is 0 without unseen pictures (nothing to
separate from; any other value only loses known pictures); with them, the threshold with the most
known kept plus unseen rejected, among those that keep ``KEEP_KNOWN`` of the known pictures the
check keeps: for collections where the check cannot work (cells, objects that are no flat picture),
the SVM's confidence is what is left. It is fitted together with a **novelty limit**: a picture
farther than it from every training picture (1 - the mean cosine of its closest few, on its visual
words or on its colour statistics) is unknown however sure the SVM is. A stranger that resembles one
class (BCCD's platelets beside red cells: the SVM names most of them "RBC" with confidence) is told
apart by how far it is from the pictures of that class. The limit, its part, or none, is chosen on
the same held-out pictures and unseen half, and kept only when it adds ``NOVELTY_GAIN``.

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
# What a novelty limit must add to known kept plus unseen rejected (shares) over the SVM threshold alone.
NOVELTY_GAIN = 0.05
# The fewest inliers a homography can have (four point pairs); below it the check means nothing.
LOWEST = 4


def unseen_half(path: str | Path, part: str) -> bool:
    """Whether an unseen picture is in the ``calibration`` or the ``evaluation`` half (by a hash of its name)."""
    digest = int(hashlib.sha1(f"unseen:{Path(path).name}".encode()).hexdigest(), 16)
    return (digest % 2 == 0) == (part == "calibration")


def _look(classifier, picture, verify: bool, label: str | None = None) -> tuple[float, float]:
    """What the decision sees of a picture: its best SVM score, and the inliers that decide whether it is kept.

    A known picture (``label``) costs the check something only when the SVM names it right:
    then its inliers with that class count, and a picture the SVM names wrongly is marked NaN
    (wrong with the check or without). A stranger's count is the most over its best classes.
    """
    from artdet.classify.model import VERIFY_CANDIDATES

    scores = classifier.scores([picture])[0]
    best = int(np.argmax(scores))
    if label is not None and classifier.classes[best] != label:
        return float(scores[best]), float("nan")
    if not verify:
        return float(scores[best]), 0.0
    if label is not None:
        return float(scores[best]), float(classifier.inliers(picture, label))
    counts = (classifier.inliers(picture, classifier.classes[i]) for i in np.argsort(-scores)[:VERIFY_CANDIDATES])
    return float(scores[best]), float(max(counts, default=0))


def held_out(
    train: FeatureSet,
    bundle_of,
    unseen: list | None = None,
    verify: bool = True,
    seed: int = 0,
    with_novelty: bool = True,
):
    """(best score, most inliers) of every training picture from a model that did not train on it, and of ``unseen``.

    ``bundle_of(features)`` makes a model bundle from a part of the training pictures (the SVM and
    references as the export makes them). The unseen pictures are looked at by the first fold's model.
    With unseen pictures and ``with_novelty``, also each picture's novelty per part (``NOVELTY_PARTS``)
    against the pictures its model trained on: ``(known, strangers, known_novelty, unseen_novelty)``.
    """
    from artdet.classify.model import NOVELTY_PARTS, Classifier, novelty, novelty_vectors

    rng = np.random.default_rng(seed)
    folds = np.arange(len(train)) % FOLDS
    rng.shuffle(folds)
    known = np.full((len(train), 2), np.nan)
    strangers = np.zeros((0, 2))
    parts = NOVELTY_PARTS if unseen and with_novelty else ()
    known_novelty = {part: np.full(len(train), np.nan) for part in parts}
    unseen_novelty = {part: np.zeros(0) for part in parts}
    for k in range(FOLDS):
        held = np.flatnonzero(folds == k)
        rest = np.flatnonzero(folds != k)
        if not len(held) or len(set(train.labels[rest].tolist())) < 2:
            continue
        classifier = Classifier(bundle_of(train.take(rest)))
        for i in held:
            known[i] = _look(classifier, train.of(int(i)), verify, str(train.labels[i]))
        if k == 0 and unseen:
            strangers = np.array([_look(classifier, picture, verify) for picture in unseen]).reshape(-1, 2)
        for part in parts:
            vectors = (classifier.vocabulary, classifier.idf)
            reference = novelty_vectors(train.take(rest), part, *vectors)
            known_novelty[part][held] = novelty(novelty_vectors(train.take(held), part, *vectors), reference)
            if k == 0:
                unseen_novelty[part] = novelty(novelty_vectors(unseen, part, *vectors), reference)
    return known, strangers, known_novelty, unseen_novelty


def choose_threshold(
    known: np.ndarray,
    known_pass: np.ndarray,
    unseen: np.ndarray,
    unseen_pass: np.ndarray,
    known_novelty: dict[str, np.ndarray] | None = None,
    unseen_novelty: dict[str, np.ndarray] | None = None,
) -> dict:
    """``unknown_threshold`` (on the best SVM score), and a novelty limit: none without unseen pictures.

    With them, among the pairs (threshold, novelty limit on one part or none) that keep at least
    ``KEEP_KNOWN`` of the known pictures the check keeps, the one with the most known kept plus
    unseen rejected (the check's rejections counted too), the lower threshold on a tie; a limit is
    kept only when it adds at least ``NOVELTY_GAIN`` to the threshold alone. The SVM's confidence
    cannot tell a stranger that looks like one class (a platelet among red cells) from that class;
    its distance to every training picture can.
    """
    if not len(unseen):
        return {"unknown_threshold": 0.0, "rule": "0: no unseen pictures to separate from"}
    if not len(known):  # nothing held out to keep: the same answer as when the check kept none
        return {"unknown_threshold": 0.0, "rule": "0: no held-out known picture to keep", "novelty_part": None}
    base = float(np.mean(known_pass)) if len(known_pass) else 0.0
    thresholds = _candidates(known, lowest=0.0)
    options: list[tuple[str | None, np.ndarray, np.ndarray, np.ndarray]] = [
        (None, np.zeros(len(known)), np.zeros(len(unseen)), np.array([np.inf]))
    ]
    for part, values in (known_novelty or {}).items():
        options.append((part, values, unseen_novelty[part], np.r_[_candidates(values), np.inf]))
    best: dict[str | None, tuple] = {}
    for part, k_novelty, u_novelty, limits in options:
        for t in thresholds:
            k_ok = known_pass & (known >= t)
            u_out = ~unseen_pass | (unseen < t)
            # Every limit at once: kept and rejected shares per limit.
            kept = (k_ok[None, :] & (k_novelty[None, :] <= limits[:, None])).mean(1)
            rejected = (u_out[None, :] | (u_novelty[None, :] > limits[:, None])).mean(1)
            for j in np.flatnonzero(kept >= KEEP_KNOWN * base):
                key = (round(float(kept[j] + rejected[j]), 6), -float(t), float(limits[j]))
                if part not in best or key > best[part][0]:
                    best[part] = (key, part, float(t), float(limits[j]), float(kept[j]), float(rejected[j]))
    # A limit must add NOVELTY_GAIN to the threshold alone (a smaller gain is within the noise of a
    # few hundred strangers). The threshold alone has a point whenever a known picture is kept.
    if None not in best:  # no known picture to keep (the check kept none, or the SVM named none right)
        return {"unknown_threshold": 0.0, "rule": "0: no held-out known picture to keep", "novelty_part": None}
    chosen = best[None]
    for part in known_novelty or {}:
        if part in best and best[part][0][0] >= max(chosen[0][0], best[None][0][0] + NOVELTY_GAIN):
            chosen = best[part]
    _, part, threshold, limit, kept_share, rejected_share = chosen
    point = {
        "unknown_threshold": threshold,
        "rule": (
            f"the most known kept plus unseen rejected, keeping >= {KEEP_KNOWN:.0%} of what the check keeps; "
            "with a novelty limit on one part of the encoding when it separates better"
        ),
        "known_kept": round(kept_share, 4),
        "unseen_rejected": round(rejected_share, 4),
        "novelty_part": part,
    }
    if part is not None:
        point["novelty_limit"] = limit
    return point


def _candidates(values: np.ndarray, lowest: float | None = None, count: int = 200) -> np.ndarray:
    """Up to ``count`` cut points among ``values`` (their quantiles), and ``lowest`` if given."""
    values = values[np.isfinite(values)]
    points = np.unique(np.round(np.quantile(values, np.linspace(0, 1, count)), 4)) if len(values) else np.zeros(0)
    return np.unique(np.r_[points, [lowest] if lowest is not None else []])


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
    """``settings`` with ``min_inliers`` and ``unknown_threshold`` fitted where they say ``auto`` (see the module).

    ``trained`` is the SVM the model exports (its C, class weight and seed retrain each fold);
    ``unseen`` a folder of photos of works not in the collection, whose calibration half is used.
    """
    from artdet.classify.dataset import load_rgb
    from artdet.classify.features import FeatureSettings, extract
    from artdet.classify.model import make_bundle, train_svm
    from artdet.data.dataset import IMAGE_SUFFIXES

    fits_check = settings.get("min_inliers") == "auto" and settings.get("verify")
    fits_threshold = settings.get("unknown_threshold") == "auto"
    if not fits_check and not (fits_threshold and unseen):
        # Nothing to fit on held-out pictures: a threshold with no stranger to separate from is 0.
        return {**settings, "unknown_threshold": 0.0} if fits_threshold else settings
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
    verify = bool(settings.get("verify"))
    looked, strangers, looked_novelty, unseen_novelty = held_out(
        train, bundle_of, pictures, verify, with_novelty=fits_threshold
    )
    right = ~np.isnan(looked[:, 1])
    known = looked[right]  # the pictures the SVM names right: what the check can cost
    known_novelty = {part: values[right] for part, values in looked_novelty.items()}
    out = dict(settings)
    calibration: dict = {}
    if verify and settings.get("min_inliers") == "auto":
        calibration["check"] = choose(known[:, 1], strangers[:, 1])
        out["min_inliers"] = calibration["check"]["min_inliers"]
    if settings.get("unknown_threshold") == "auto":
        bar = out["min_inliers"] if verify else 0
        calibration["threshold"] = choose_threshold(
            known[:, 0], known[:, 1] >= bar, strangers[:, 0], strangers[:, 1] >= bar, known_novelty, unseen_novelty
        )
        out["unknown_threshold"] = calibration["threshold"]["unknown_threshold"]
    calibration.update(known_pictures=len(looked), named_right=len(known), unseen_pictures=len(strangers))
    log.info(
        "calibration | on %d held-out training pictures and %d unseen: %s", len(known), len(strangers), calibration
    )
    out["calibration"] = calibration
    return out
