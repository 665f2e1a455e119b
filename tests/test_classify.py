"""The artwork classifier branch: a real Snakemake run on a tiny generated collection, and its API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from artdet.classify.evaluate import scores_of
from artdet.deploy.serve import Limits, create_classify_app
from conftest import CLASSIFY_WORKS


@pytest.mark.slow
def test_snakemake_classify_builds_the_branch_alone_and_reports_the_corrupt_image(classify_run: Path) -> None:
    results = classify_run / "results" / "classify"
    metrics = json.loads((results / "evaluation" / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "top3_accuracy", "per_class", "baseline", "latency_ms", "unseen"):
        assert key in metrics
    assert metrics["accuracy"] > metrics["baseline"]["accuracy"]
    assert metrics["top3_accuracy"] >= metrics["accuracy"]
    assert (results / "model.joblib").is_file()
    assert (results / "evaluation" / "confusion_matrix.png").stat().st_size > 1000
    assert (results / "evaluation" / "worst_examples.jpg").stat().st_size > 1000
    report = json.loads((results / "data_report.json").read_text())
    dropped = {d["file"]: d["reason"] for d in report["dropped"]}
    assert "not a readable image" in dropped[str(Path("bathers/broken.jpg"))]
    assert "not in a class folder" in dropped["loose.jpg"]
    # Every other picture is counted on a side: 5 works x 8 photos.
    assert report["pictures"] == CLASSIFY_WORKS * 8
    assert "broken.jpg" in (results / "data_report.md").read_text()
    assert not (classify_run / "results" / "data").exists(), "the detector's stages ran"
    # min_inliers was fitted on held-out training pictures and half the strangers; the other half and
    # the test pictures say what the check does: it rejects the strangers and costs the known little.
    check, decision = metrics["geometric_check"], metrics["decision"]
    calibration = decision["calibration"]
    classes = json.loads((results / "data_report.json").read_text())["classes"]
    train = sum(c["train"] for c in classes.values())
    assert calibration["known_pictures"] == train, "calibration reads training pictures only"
    unseen = [p for p in (classify_run / "works-unseen").rglob("*.jpg")]
    assert calibration["unseen_pictures"] + metrics["unseen"]["pictures"] == len(unseen)
    assert calibration["check"]["min_inliers"] == check["min_inliers"] == decision["min_inliers"] >= 4
    assert metrics["unseen"]["rejection_rate"] >= 0.9 and decision["cost"] <= 0.1, (metrics["unseen"], decision)
    # Each unknown answer names the part of the decision that refused it; the counts add up.
    unseen = metrics["unseen"]
    assert sum(unseen["called_unknown_by"].values()) == unseen["called_unknown"], unseen
    assert unseen["called_unknown_by"]["geometric_check"] > 0, unseen
    assert sum(decision["known_called_unknown"].values()) == metrics["called_unknown"], decision


@pytest.mark.slow
def test_without_the_geometric_check_strangers_are_named_as_works(classify_run: Path, venv_env: dict) -> None:
    """The rejection figure can fall: the same SVM exported without the check names a work for every stranger."""
    import subprocess
    import sys

    results = classify_run / "results" / "classify"
    unchecked = classify_run / "unchecked.joblib"

    def artdet(*args: str) -> str:
        run = subprocess.run([sys.executable, "-m", "artdet", *args], env=venv_env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout

    features = sorted(str(p) for p in (results / "features").glob("*.npz"))
    artdet(
        "classify-export", str(unchecked), "--trained", str(results / "train" / "svm.joblib"),
        "--vocabulary", str(results / "vocabulary.npy"), "--features", *features, "--verify", "false",
    )  # fmt: skip
    strangers = classify_run / "works-unseen"
    checked = [
        json.loads(line)["label"]
        for line in artdet("classify", str(results / "model.joblib"), str(strangers)).splitlines()
    ]
    unchecked_labels = [
        json.loads(line)["label"] for line in artdet("classify", str(unchecked), str(strangers)).splitlines()
    ]
    assert checked == ["unknown"] * 4
    assert len(unchecked_labels) == 4 and "unknown" not in unchecked_labels


def test_models_exported_before_the_contrast_setting_keep_opencvs_default() -> None:
    from artdet.classify.features import OPENCV_CONTRAST_THRESHOLD, FeatureSettings
    from artdet.defaults import default

    old = FeatureSettings.from_dict({"max_side": 400, "upscale_to": 96, "max_features": 1000})
    assert old.contrast_threshold == OPENCV_CONTRAST_THRESHOLD == 0.04
    assert FeatureSettings.from_dict({"contrast_threshold": 0.02}).contrast_threshold == 0.02
    assert FeatureSettings().contrast_threshold == default("classify.contrast_threshold")


def test_a_lower_contrast_threshold_finds_more_keypoints_on_a_demo_photo() -> None:
    import io as _io

    from artdet.classify.demo import paint_artwork, photograph
    from artdet.classify.features import FeatureSettings, extract

    photo = photograph(paint_artwork(0, 3), np.random.default_rng(1))
    rgb = np.asarray(Image.open(_io.BytesIO(photo)).convert("RGB"))
    faint = extract(rgb, FeatureSettings(contrast_threshold=0.01))
    strong = extract(rgb, FeatureSettings(contrast_threshold=0.04))
    assert len(faint.descriptors) > 1.5 * len(strong.descriptors) > 0


@pytest.mark.slow
def test_artdet_classify_on_a_folder_names_the_works(classify_run: Path, venv_env: dict) -> None:
    import subprocess
    import sys

    model = classify_run / "results" / "classify" / "model.joblib"
    folder = classify_run / "works" / "cathedral"
    result = subprocess.run(
        [sys.executable, "-m", "artdet", "classify", str(model), str(folder)],
        env=venv_env,
        capture_output=True,
        text=True,
        check=True,
    )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 8
    assert sum(a["label"] == "cathedral" for a in answers) >= 6
    assert all(len(a["top"]) == 3 for a in answers)


@pytest.mark.slow
def test_classify_api_answers_and_rejects_junk_with_4xx(classify_run: Path) -> None:
    model = classify_run / "results" / "classify" / "model.joblib"
    client = TestClient(create_classify_app(model, Limits(max_bytes=2_000_000)))
    photo = next((classify_run / "works" / "harbour").glob("*.jpg")).read_bytes()
    answer = client.post("/v1/classify?top_k=2", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] in {"harbour", "unknown"}
    assert (body["reason"] is None) == (body["label"] != "unknown"), body  # an unknown says why
    assert len(body["top"]) == 2 and body["top"][0]["score"] >= body["top"][1]["score"]
    assert client.post("/v1/classify", content=photo).status_code == 200  # raw body
    assert client.post("/v1/classify", content=b"").status_code == 400
    assert client.post("/v1/classify", content=b"\x00junk" * 100).status_code == 415
    assert client.post("/v1/classify", content=photo[: len(photo) // 3]).status_code == 400
    assert client.post("/v1/classify", content=b"x" * 2_100_000).status_code == 413
    assert client.post("/v1/classify?top_k=0", content=photo).status_code == 422
    big = io.BytesIO()
    Image.new("RGB", (13_000, 10)).save(big, format="PNG")
    assert client.post("/v1/classify", content=big.getvalue()).status_code == 413
    info = client.get("/v1/classifier").json()
    assert info["classes"][0] == "annunciation" and str(classify_run) not in json.dumps(info)
    # Behind an API key, like /v1/detect: 401 without it, an answer with it.
    keyed = TestClient(create_classify_app(model, Limits(max_bytes=2_000_000), api_key="secret"))
    assert keyed.post("/v1/classify", content=photo).status_code == 401
    assert keyed.post("/v1/classify", content=photo, headers={"Authorization": "Bearer secret"}).status_code == 200
    assert keyed.get("/health").status_code == 200


def test_scores_can_show_a_loss_and_sit_beside_the_baseline() -> None:
    rng = np.random.default_rng(0)
    truth = ["a"] * 80 + ["b"] * 10 + ["c"] * 10
    right = scores_of(truth, truth, [[t] for t in truth], ["a", "b", "c"])
    shuffled = list(rng.permutation(truth))
    wrong = scores_of(truth, shuffled, [[s] for s in shuffled], ["a", "b", "c"])
    majority = scores_of(truth, ["a"] * 100, [["a"]] * 100, ["a", "b", "c"])
    assert right["accuracy"] == right["balanced_accuracy"] == 1.0
    assert wrong["balanced_accuracy"] < 0.6
    # Always answering the big class looks good on accuracy, not on balanced accuracy.
    assert majority["accuracy"] == 0.8 and majority["balanced_accuracy"] == pytest.approx(1 / 3, abs=1e-3)
    assert majority["per_class"]["b"] == {"support": 10, "precision": None, "recall": 0.0}


def test_min_inliers_is_the_largest_that_keeps_98_percent_or_the_best_separation() -> None:
    from artdet.classify.calibrate import choose

    known = np.array([30] * 98 + [9, 5])  # two known pictures match weakly
    alone = choose(known, np.array([], dtype=int))
    assert alone["min_inliers"] == 30 and alone["known_kept"] == 0.98
    # Strangers reach 12 inliers: any value from 13 up keeps 98% and rejects them all; the highest is kept.
    both = choose(known, np.array([12, 8, 6, 11]))
    assert both["min_inliers"] == 30 and both["unseen_rejected"] == 1.0
    # Strangers as strong as the known: no value rejects any, so none is worth a known picture.
    strong = choose(known, np.array([40, 35, 31]))
    assert strong["known_kept"] == 1.0 and strong["unseen_rejected"] == 0.0 and strong["min_inliers"] == 5
    # Made to fail on purpose: when a tenth of the known match weakly, the bar drops to keep them.
    weak = choose(np.array([30] * 90 + [6] * 10), np.array([], dtype=int))
    assert weak["min_inliers"] == 6


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an empty held-out set is an answer, not a warning
def test_a_novelty_limit_is_fitted_only_when_it_separates_strangers_the_svm_cannot() -> None:
    from artdet.classify.calibrate import choose_threshold

    rng = np.random.default_rng(0)
    known = rng.uniform(0.6, 1.0, 400)  # the SVM's best score: strangers look as sure as known pictures
    unseen = rng.uniform(0.6, 1.0, 100)
    passes, unseen_passes = np.ones(400, bool), np.ones(100, bool)
    near = {"colour": rng.uniform(0.0, 0.02, 400), "words": rng.uniform(0.2, 0.4, 400)}
    far = {"colour": rng.uniform(0.05, 0.1, 100), "words": rng.uniform(0.2, 0.4, 100)}
    point = choose_threshold(known, passes, unseen, unseen_passes, near, far)
    assert point["novelty_part"] == "colour" and 0.02 <= point["novelty_limit"] < 0.05, point
    assert point["unseen_rejected"] == 1.0 and point["known_kept"] >= 0.98
    # Made to fail on purpose: strangers as close as the known pictures on every part: no limit is worth a known one.
    same = {part: rng.permutation(values)[:100] for part, values in near.items()}
    plain = choose_threshold(known, passes, unseen, unseen_passes, near, same)
    assert plain["novelty_part"] is None and "novelty_limit" not in plain
    # The check kept no known picture (nothing left to lose), or there is none: a point, no crash.
    none_kept = choose_threshold(known, ~passes, unseen, unseen_passes, near, far)
    assert 0.0 <= none_kept["unknown_threshold"] <= 1.0
    empty = choose_threshold(known[:0], passes[:0], unseen, unseen_passes, {k: v[:0] for k, v in near.items()}, far)
    assert empty["unknown_threshold"] == 0.0
    # No strangers to separate from: nothing is fitted.
    assert choose_threshold(known, passes, unseen[:0], unseen_passes[:0], near, {}) == {
        "unknown_threshold": 0.0,
        "rule": "0: no unseen pictures to separate from",
    }


def test_a_model_with_a_novelty_limit_calls_a_far_picture_unknown() -> None:
    """The same SVM names a stranger with another colour as a work; with the fitted limit it is unknown."""
    from artdet.classify.features import Features, FeatureSet
    from artdet.classify.model import UNKNOWN, Classifier, make_bundle, settings_from, train_svm

    rng = np.random.default_rng(1)
    centres = {"a": rng.integers(0, 200, 128), "b": rng.integers(0, 200, 128)}
    palette = {"a": rng.uniform(0, 1, 78), "b": rng.uniform(0, 1, 78)}

    def picture(label: str, colour: np.ndarray | None = None) -> Features:
        descriptors = np.clip(centres[label] + rng.normal(0, 10, (30, 128)), 0, 255).astype(np.uint8)
        colour = palette[label] if colour is None else colour
        return Features(rng.uniform(0, 100, (30, 2)).astype(np.float32), descriptors, colour.astype(np.float32))

    pictures = [picture(label) for label in "ab" * 20]
    features = FeatureSet(
        np.concatenate([p.points for p in pictures]),
        np.concatenate([p.descriptors for p in pictures]),
        np.arange(0, 30 * 41, 30),
        np.stack([p.colour for p in pictures]),
        np.arange(40).astype(str),
        np.array(list("ab" * 20)),
        np.array(["train"] * 40),
    )
    # RootSIFT of the two centres as the vocabulary: each picture's words are its class's.
    stacked = np.stack([centres["a"], centres["b"]]).astype(np.float32)
    vocabulary = np.sqrt(stacked / stacked.sum(1, keepdims=True))
    trained = train_svm(features, vocabulary, 1.0, "balanced", 0.5)
    settings = settings_from({"verify": False, "unknown_threshold": 0.0})
    stranger = picture("a", colour=rng.uniform(0, 1, 78))  # a's pattern, another colour
    plain = Classifier(make_bundle(features, vocabulary, trained, settings))
    assert plain(np.zeros((1, 1, 3), np.uint8)) is not None  # a picture with no keypoints is answered
    assert plain.decide(stranger, plain.scores([stranger])[0]).label == "a"
    fitted = {"threshold": {"novelty_part": "colour", "novelty_limit": 0.01}}
    bundle = make_bundle(features, vocabulary, trained, {**settings, "calibration": fitted})
    assert bundle["version"] == 2 and bundle["novelty"]["reference"].shape == (40, 78)
    checked = Classifier(bundle)
    refused = checked.decide(stranger, checked.scores([stranger])[0])
    assert refused.label == UNKNOWN and refused.reason == "novelty", refused  # which setting refused it
    known = picture("b")
    answer = checked.decide(known, checked.scores([known])[0])
    assert answer.label == "b" and answer.reason is None
    # A threshold above every score refuses the known picture too, and says so.
    strict = Classifier(make_bundle(features, vocabulary, trained, {**settings, "unknown_threshold": 1.0}))
    assert strict.decide(known, strict.scores([known])[0]).reason == "unknown_threshold"
