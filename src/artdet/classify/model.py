"""Visual vocabulary, linear SVM, the exported model file, and prediction with a geometric check.

A picture becomes a fixed-length vector: each RootSIFT descriptor votes for its
nearest visual word (a k-means centre of training descriptors), the votes are
weighted by how rare the word is (idf), square-rooted and L2-normalised, and the
colour statistics are appended. A linear SVM separates the classes in that space;
it is cheap to train and to call beside the SIFT features, which take most of a
picture's time (``bench/classify.py``).

An SVM always names one of the classes it knows, even for a painting it has never
seen. The geometric check asks a stricter question of the best few classes: do
enough of the photo's keypoints map onto one of that class's reference pictures
through a single homography? A flat painting seen from any angle passes; a
different painting with similar colours and textures does not, and is called
``unknown``. The homography is estimated with MAGSAC++ (OpenCV's USAC), which
scores a model by its residuals rather than a hard inlier count, and so finds
fewer chance inliers on photos of strangers than plain RANSAC did (on frame edges
and short brush strokes) while keeping the true ones.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from artdet.classify.features import Features, FeatureSet, FeatureSettings, extract
from artdet.defaults import default

FORMAT = "artdet-classifier"
# 2: a model with a fitted novelty limit (a reader of version 1 would ignore it); others are still 1.
VERSION = 2
UNKNOWN = "unknown"
# Why an answer is unknown (Prediction.reason, the evaluation's counts), named after the setting that
# refused: no reference photo of the best classes matched with min_inliers inliers; the best score is
# below unknown_threshold; the picture is farther than the novelty limit from every training picture.
NO_MATCH, LOW_SCORE, NOVEL = "geometric_check", "unknown_threshold", "novelty"
REASONS = (NO_MATCH, LOW_SCORE, NOVEL)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman, 2012): L1-normalise, then square-root; compares better than raw SIFT."""
    d = descriptors.astype(np.float32)
    return np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-6))


def fit_vocabulary(features: FeatureSet, size: int, seed: int, max_descriptors: int = 100_000) -> np.ndarray:
    """``size`` visual words: k-means centres of (a sample of) the training descriptors."""
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    descriptors = features.descriptors
    if len(descriptors) > max_descriptors:
        descriptors = descriptors[rng.choice(len(descriptors), max_descriptors, replace=False)]
    if len(descriptors) < size:
        raise ValueError(
            f"only {len(descriptors)} SIFT descriptors in the training pictures, fewer than vocabulary_size "
            f"{size}; add pictures or lower classify: vocabulary_size"
        )
    kmeans = MiniBatchKMeans(n_clusters=size, random_state=seed, n_init=3, batch_size=4096)
    kmeans.fit(root_sift(descriptors))
    return kmeans.cluster_centers_.astype(np.float32)


def _words(descriptors: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    d = root_sift(descriptors)
    distances = (vocabulary**2).sum(1)[None, :] - 2 * d @ vocabulary.T
    return distances.argmin(1)


def word_histograms(features: FeatureSet | list[Features], vocabulary: np.ndarray) -> np.ndarray:
    """Visual-word counts per picture (pictures x words)."""
    pictures = [features.of(i) for i in range(len(features))] if isinstance(features, FeatureSet) else features
    counts = np.zeros((len(pictures), len(vocabulary)), np.float32)
    for row, picture in enumerate(pictures):
        if len(picture.descriptors):
            counts[row] = np.bincount(_words(picture.descriptors, vocabulary), minlength=len(vocabulary))
    return counts


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)).astype(np.float32)


def encode(counts: np.ndarray, colour: np.ndarray, idf: np.ndarray, colour_weight: float) -> np.ndarray:
    """The SVM's input: idf-weighted, square-rooted, L2-normalised word counts, then weighted colour statistics."""
    return np.hstack([_unit_rows(np.sqrt(counts * idf)), colour_weight * _unit_rows(colour)]).astype(np.float32)


# The parts of a picture's encoding the novelty score can measure: its visual words, or its colour.
NOVELTY_PARTS = ("words", "colour")
# Training pictures a picture's novelty is measured against: the mean of its closest few (one
# near-duplicate training picture should not make a stranger look familiar).
NOVELTY_NEIGHBOURS = 3


def novelty_vectors(pictures: FeatureSet | list[Features], part: str, vocabulary: np.ndarray, idf: np.ndarray):
    """One part of the pictures' encodings (unit rows): what the novelty score compares."""
    if part == "words":
        return _unit_rows(np.sqrt(word_histograms(pictures, vocabulary) * idf))
    if part == "colour":
        colour = pictures.colour if isinstance(pictures, FeatureSet) else np.stack([p.colour for p in pictures])
        return _unit_rows(colour)
    raise ValueError(f"novelty part {part!r}: expected one of {NOVELTY_PARTS}")


def novelty(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """How far each picture is from the training pictures: 1 - the mean cosine of its closest few (0 = seen)."""
    if not len(reference):
        return np.ones(len(vectors), np.float32)
    k = min(NOVELTY_NEIGHBOURS, len(reference))
    similarity = vectors @ reference.T
    closest = np.partition(similarity, len(reference) - k, axis=1)[:, -k:]
    return (1.0 - closest.mean(1)).astype(np.float32)


def train_svm(
    features: FeatureSet, vocabulary: np.ndarray, c: float, class_weight: str, colour_weight: float, seed: int = 0
) -> dict:
    """A linear SVM on the training pictures, with the idf weights it was trained with."""
    from sklearn.svm import LinearSVC

    labels = features.labels
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"the training side has {len(set(labels.tolist()))} class(es); a classifier needs two or more")
    counts = word_histograms(features, vocabulary)
    idf = np.log((1 + len(counts)) / (1 + (counts > 0).sum(0))).astype(np.float32) + 1
    x = encode(counts, features.colour, idf, colour_weight)
    svm = LinearSVC(C=c, class_weight=None if class_weight == "none" else class_weight, random_state=seed)
    svm.fit(x, labels)
    return {"svm": svm, "idf": idf}


def pick_references(features: FeatureSet, per_class: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per class, the ``per_class`` training pictures with the most keypoints (points, descriptors)."""
    references: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    counts = np.diff(features.offsets)
    for label in sorted(set(features.labels.tolist())):
        rows = np.flatnonzero(features.labels == label)
        for index in rows[np.argsort(-counts[rows], kind="stable")][:per_class]:
            picture = features.of(int(index))
            references.setdefault(label, []).append((picture.points.astype(np.float16), picture.descriptors))
    return references


@dataclass
class Prediction:
    """What the classifier says about one picture.

    ``top`` holds the ``top_k`` classes by SVM score (``class``, ``score`` in 0..1, and ``inliers``
    for the classes the geometric check tried: those down to the first that passed); ``label`` is
    the answer: a class, or ``unknown``, and then ``reason`` says which part of the decision
    refused every class (one of :data:`REASONS`), so a user knows which setting to look at.
    """

    label: str
    score: float
    top: list[dict] = field(default_factory=list)
    milliseconds: float = 0.0
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# Lowe's ratio test, the robust estimator and its reprojection error (pixels of the picture after resizing).
RATIO = 0.75
ESTIMATOR = cv2.USAC_MAGSAC
RANSAC_PIXELS = 4.0
# Classes (best SVM scores first) whose references the geometric check tries.
VERIFY_CANDIDATES = 3


def _plausible(homography: np.ndarray, src: np.ndarray, dst: np.ndarray) -> bool:
    """Whether a homography could be a camera's view of a flat picture, not chance matches.

    Chance matches between different paintings fit degenerate maps: a mirror image (negative
    determinant), a collapse to a line or a blow-up (tiny or huge area ratio), or all inliers
    bunched in one small patch.
    """
    if len(src) < 4:
        return False
    det = float(np.linalg.det(homography[:2, :2]))
    if not 0.1 < det < 10:
        return False
    return min(float(src.std(0).min()), float(dst.std(0).min())) >= 8.0


def _softmax(values: np.ndarray) -> np.ndarray:
    e = np.exp(values - values.max())
    return e / e.sum()


class Classifier:
    """An exported classifier (``model.joblib``): ``Classifier(path)(rgb_pixels) -> Prediction``."""

    def __init__(self, path: str | Path | dict):
        import joblib

        bundle = path if isinstance(path, dict) else joblib.load(path)
        if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
            raise ValueError(f"{path}: not an artdet classifier (export one with `artdet classify-export`)")
        if bundle["version"] > VERSION:
            raise ValueError(f"{path}: model format {bundle['version']} is newer than this artdet reads ({VERSION})")
        self.path = None if isinstance(path, dict) else Path(path)
        self.classes: list[str] = list(bundle["classes"])
        self.settings: dict = bundle["settings"]
        self.features = FeatureSettings.from_dict(self.settings)
        self.vocabulary: np.ndarray = bundle["vocabulary"]
        self.idf: np.ndarray = bundle["idf"]
        self.svm = bundle["svm"]
        # Per class, (points, RootSIFT descriptors) of the reference pictures: converted once, not at every photo.
        self.references: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
            label: [(points, root_sift(descriptors)) for points, descriptors in pictures]
            for label, pictures in bundle["references"].items()
        }
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        # Fitted with unseen pictures only (classify.calibrate): {"part", "limit", "reference"} or None.
        self.novelty: dict | None = bundle.get("novelty")
        if self.novelty:  # float16 in the file; float32 once here, not at every picture
            self.novelty = {**self.novelty, "reference": self.novelty["reference"].astype(np.float32)}

    def novelty_of(self, pictures: list[Features]) -> np.ndarray:
        """Each picture's novelty on the fitted part (see :func:`novelty`); zeros for a model without one."""
        if not self.novelty:
            return np.zeros(len(pictures), np.float32)
        part = self.novelty["part"]
        return novelty(novelty_vectors(pictures, part, self.vocabulary, self.idf), self.novelty["reference"])

    def scores(self, pictures: list[Features]) -> np.ndarray:
        """Class scores (pictures x classes, each row summing to 1; softmax of the SVM's margins x 4)."""
        x = encode(
            word_histograms(pictures, self.vocabulary),
            np.stack([p.colour for p in pictures]),
            self.idf,
            self.settings["colour_weight"],
        )
        margins = self.svm.decision_function(x)
        if margins.ndim == 1:  # two classes: one margin for the second class
            margins = np.stack([-margins, margins], 1)
        order = [list(self.svm.classes_).index(c) for c in self.classes]
        return np.stack([_softmax(4.0 * m[order]) for m in margins])

    def inliers(self, picture: Features, label: str) -> int:
        """The most homography inliers between ``picture`` and one of ``label``'s reference pictures."""
        best = 0
        if len(picture.descriptors) < 4:
            return 0
        query = root_sift(picture.descriptors)
        for points, descriptors in self.references.get(label, []):
            if len(descriptors) < 4:
                continue
            pairs = self._matcher.knnMatch(query, descriptors, k=2)
            good = [m for m, *rest in pairs if rest and m.distance < RATIO * rest[0].distance]
            if len(good) < 4:
                continue
            src = picture.points[[m.queryIdx for m in good]].reshape(-1, 2).astype(np.float32)
            dst = points[[m.trainIdx for m in good]].reshape(-1, 2).astype(np.float32)
            try:
                homography, mask = cv2.findHomography(src, dst, ESTIMATOR, RANSAC_PIXELS)
            except cv2.error:  # a degenerate sample (all points on a line, say) fits no homography
                continue
            if homography is not None and _plausible(homography, src[mask.ravel() > 0], dst[mask.ravel() > 0]):
                best = max(best, int(mask.sum()))
        return best

    def decide(self, picture: Features, scores: np.ndarray, top_k: int | None = None) -> Prediction:
        """One picture's top classes and answer, after the geometric check, the threshold and the novelty limit."""
        top_k = top_k or self.settings["top_k"]
        order = np.argsort(-scores)[: max(top_k, 1)]
        top = [{"class": self.classes[i], "score": round(float(scores[i]), 4)} for i in order]
        label, score, reason = top[0]["class"], top[0]["score"], None
        if self.settings["verify"]:
            # The best few classes by SVM score, whatever top_k is, in that order: the first one that
            # passes is the answer, and the classes after it are not checked (nor given an inlier count).
            label, reason = UNKNOWN, NO_MATCH
            for i in np.argsort(-scores)[:VERIFY_CANDIDATES]:
                count = self.inliers(picture, self.classes[i])
                for entry in top:
                    if entry["class"] == self.classes[i]:
                        entry["inliers"] = count
                if count >= self.settings["min_inliers"]:
                    label, score, reason = self.classes[i], float(scores[i]), None
                    break
        if label != UNKNOWN and score < self.settings["unknown_threshold"]:
            label, reason = UNKNOWN, LOW_SCORE
        elif self.novelty and label != UNKNOWN and self.novelty_of([picture])[0] > self.novelty["limit"]:
            label, reason = UNKNOWN, NOVEL  # a stranger the SVM still names confidently
        return Prediction(label, round(float(score), 4), top, reason=reason)

    def __call__(self, rgb: np.ndarray, top_k: int | None = None) -> Prediction:
        start = time.perf_counter()
        picture = extract(rgb, self.features)
        prediction = self.decide(picture, self.scores([picture])[0], top_k)
        prediction.milliseconds = round((time.perf_counter() - start) * 1000, 2)
        return prediction


def export(features: FeatureSet, vocabulary: np.ndarray, trained: dict, settings: dict, out: str | Path) -> dict:
    """Write one joblib file with everything prediction needs; return the bundle."""
    import joblib

    bundle = make_bundle(features, vocabulary, trained, settings)
    joblib.dump(bundle, out, compress=3)
    return bundle


def make_bundle(features: FeatureSet, vocabulary: np.ndarray, trained: dict, settings: dict) -> dict:
    """Everything prediction needs, as :class:`Classifier` reads it (``export`` writes it to a file).

    ``auto`` settings must be fitted first (:func:`artdet.classify.calibrate.calibrated`); an
    ``unknown_threshold`` still ``auto`` is 0, what the fit gives without unseen pictures.
    """
    if settings["verify"] and settings["min_inliers"] == "auto":
        raise ValueError("min_inliers: auto must be fitted before export (artdet.classify.calibrate.calibrated)")
    if settings["unknown_threshold"] == "auto":
        settings = {**settings, "unknown_threshold": 0.0}
    novel = None
    fitted = (settings.get("calibration") or {}).get("threshold") or {}
    if fitted.get("novelty_part"):
        # The training pictures' vectors of the fitted part (float16: the model file stays small).
        part = fitted["novelty_part"]
        reference = novelty_vectors(features, part, vocabulary, trained["idf"]).astype(np.float16)
        novel = {"part": part, "limit": float(fitted["novelty_limit"]), "reference": reference}
    return {
        "format": FORMAT,
        "version": VERSION if novel else 1,
        "classes": sorted(set(features.labels.tolist())),
        "settings": settings,
        "vocabulary": vocabulary,
        "idf": trained["idf"],
        "svm": trained["svm"],
        "references": pick_references(features, settings["references"]) if settings["verify"] else {},
        "novelty": novel,
    }


def settings_from(values: dict) -> dict:
    """The model's settings: feature extraction and decision, defaults from the config schema."""
    keys = ("max_side", "upscale_to", "max_features", "contrast_threshold", "colour_weight", "top_k")
    keys += ("unknown_threshold", "verify", "min_inliers", "references")
    return {k: values.get(k, default(f"classify.{k}")) for k in keys}
