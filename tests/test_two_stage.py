"""Two-stage models: a class-agnostic detector finds the objects, a classifier names them from the original photo.

The end-to-end tests turn ``classifier: auto`` on in a copy of the finished detector run
(:func:`conftest.workflow_run`), so the detector form is reused and only the two-stage form,
the val scores of both and the choice are built.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from artdet.classify.boxes import NAME_FLOOR, classifier_mode, train_crops
from artdet.data.validate import ValidatedImage
from artdet.evaluate.forms import choose_form
from workflow_helpers import planned_jobs, snakemake

DATA_RULES = {"validate", "resize", "split", "labels_csv", "tfrecord", "label_map", "data_report", "stats"}


@pytest.fixture(scope="session")
def two_stage_run(workflow_run: Path, venv_env: dict, tmp_path_factory: pytest.TempPathFactory):
    """The detector run with classifier: auto (TFLite forms left out); yields (folder, the jobs it planned)."""
    work = tmp_path_factory.mktemp("two_stage") / "run"
    shutil.copytree(workflow_run, work, symlinks=True)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["models"]["tiny"]["classifier"] = "auto"
    config["export"] = {"tflite": []}
    config["classify"] = {"vocabulary_size": 64}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    planned = planned_jobs(work, venv_env)
    snakemake(work, venv_env)
    return work, planned


def test_classifier_setting_reads_yaml_booleans_and_rejects_other_words() -> None:
    assert classifier_mode(True) == "on" and classifier_mode(False) == "off"
    assert classifier_mode(None) == "auto" and classifier_mode("off") == "off"
    with pytest.raises(ValueError, match="auto, on or off"):
        classifier_mode("maybe")


def test_auto_keeps_the_higher_val_ap50_and_a_tie_keeps_the_detector(tmp_path: Path) -> None:
    def metrics(name: str, ap50: float) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"AP50": ap50, "AP": ap50 / 2, "latency_ms": {"images": 9}}))
        return path

    assert choose_form("m", "auto", metrics("a", 0.6), metrics("b", 0.9))["kept"] == "two_stage"
    assert choose_form("m", "auto", metrics("a", 0.9), metrics("b", 0.6))["kept"] == "detector"
    assert choose_form("m", "auto", metrics("a", 0.7), metrics("b", 0.7))["kept"] == "detector"
    alone = choose_form("m", "auto")
    assert alone["kept"] == "detector" and "without a val split" in alone["reason"]
    one_class = choose_form("m", "auto", classes=1)
    assert one_class["kept"] == "detector" and "one class" in one_class["reason"]
    assert choose_form("m", "on")["saved_model"] == "results/m/two_stage/saved_model"


@pytest.mark.parametrize(
    "box",
    [(10.0, 10.0, 30.0, 40.0), (99.6, 20.0, 100.0, 30.0), (120.0, 90.0, 140.0, 95.0), (5.0, 5.0, 5.0, 5.0)],
    ids=["inside", "on-the-right-edge", "past-the-corner", "no-size"],
)
def test_every_detection_gets_a_crop_of_the_image(box: tuple) -> None:
    from artdet.classify.dataset import padded_box

    # A detection on or past the border, or of no size, once gave an empty crop that stopped the
    # two-stage evaluation of a TFLite file (OpenCV refuses an empty image).
    x0, y0, x1, y1 = padded_box(box, 100, 80, 0.1)
    assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 80, (x0, y0, x1, y1)
    if box[0] < 100 and box[1] < 80 and box[2] > box[0]:
        assert x0 <= box[0] and x1 >= min(box[2], 100), "the crop covers the box"


def test_only_train_boxes_become_crops_and_the_others_are_counted() -> None:
    def image(source: str, boxes: int) -> ValidatedImage:
        objects = [{"name": "cat", "xmin": 10, "ymin": 10, "xmax": 60, "ymax": 50}] * boxes
        return ValidatedImage(source, None, 100, 80, 1, "RGB", "JPEG", "", "", objects)

    images = [image("a.jpg", 2), image("b.jpg", 1), image("c.jpg", 3)]
    scan, boxes = train_crops(images, {"a.jpg": "train", "b.jpg": "val", "c.jpg": "test"}, crop_padding=0.1)
    assert boxes == {"train": 2, "val": 1, "test": 3}
    assert {item.image for item in scan.items} == {"a.jpg"} and {item.side for item in scan.items} == {"train"}
    # Padded by 10 % of the box on each side, inside the image.
    assert scan.items[0].box == (5, 6, 66, 55)


@pytest.mark.slow
def test_switching_the_classifier_on_reruns_no_data_stage_nor_the_detector(two_stage_run) -> None:
    _, planned = two_stage_run
    assert not DATA_RULES & set(planned), planned
    assert planned["train"] == 1 and planned["pipeline_config"] == 1  # the two-stage detector only
    assert planned["box_features"] == 3 and planned["box_classifier"] == 1
    # Its export scores it on val (the detector's export already did): then the choice.
    assert planned["export"] == 1 and planned["choose_form"] == 1


@pytest.mark.slow
def test_two_stage_detector_trains_one_class_and_every_output_keeps_the_real_classes(two_stage_run) -> None:
    work, _ = two_stage_run
    results = work / "results"
    text = (results / "tiny" / "two_stage" / "pipeline.yaml").read_text()
    rendered = yaml.safe_load(text)
    assert rendered["task"]["model"]["num_classes"] == 2  # one class and the background
    decoder = rendered["task"]["train_data"]["decoder"]
    assert decoder["type"] == "label_map_decoder"
    assert rendered["task"]["validation_data"]["decoder"] == decoder
    with open(decoder["label_map_decoder"]["label_map"]) as handle:
        rows = list(csv.reader(handle))
    real = rendered["artdet"]["two_stage"]["classes"]
    assert sorted(name for _, name in rows) == sorted(real) and {i for i, _ in rows} == {"1"}
    assert len(real) >= 3
    # The detector's own pipeline is untouched: all its classes, the plain decoder.
    plain = yaml.safe_load((results / "tiny" / "pipeline.yaml").read_text())
    assert plain["task"]["model"]["num_classes"] == len(real) + 1
    assert plain["task"]["train_data"]["decoder"]["type"] == "simple_decoder"

    saved = results / "tiny" / "two_stage" / "saved_model"
    assert (saved / "label_map.pbtxt").read_text() == (results / "data" / "label_map.pbtxt").read_text()
    assert (saved / "classifier.joblib").is_file()
    metrics = json.loads((results / "tiny" / "two_stage" / "evaluation" / "saved_model" / "metrics.json").read_text())
    assert metrics["two_stage"] is True
    assert set(metrics["per_class"]) == set(real)
    assert metrics["AP50"] <= metrics["class_free"]["AP50"] + 1e-6
    comparison = (results / "comparison.md").read_text()
    assert "| tiny/two_stage | saved_model |" in comparison and "| tiny | saved_model |" in comparison


@pytest.mark.slow
def test_the_classifier_saw_no_val_or_test_crop(two_stage_run) -> None:
    from artdet.classify.features import read_shards

    work, _ = two_stage_run
    boxes = work / "results" / "box_classifier"
    summary = json.loads((boxes / "summary.json").read_text())
    assert summary["crop_sides"] == ["train"]
    assert summary["boxes_per_side"]["val"] > 0 and summary["boxes_per_side"]["test"] > 0
    features = read_shards(sorted(boxes.glob("features/*.npz")))
    sides = {}
    for split in (work / "results" / "data" / "shards").glob("*/split.csv"):
        with open(split) as handle:
            sides.update({row["source"]: row["split"] for row in csv.DictReader(handle)})
    crop_photos = {crop_id.split("#")[0] for crop_id in features.ids.tolist()}
    assert crop_photos and {sides[photo] for photo in crop_photos} == {"train"}
    with open(work / "results" / "data" / "train_labels.csv") as handle:
        assert len(features) == summary["crops"] == sum(1 for _ in csv.DictReader(handle))


@pytest.mark.slow
def test_auto_keeps_the_form_better_on_val_and_a_bad_classifier_loses(two_stage_run, tmp_path: Path) -> None:
    from artdet.classify.features import read_shards
    from artdet.classify.model import export, fit_vocabulary, settings_from, train_svm
    from artdet.evaluate.evaluator import evaluate_model

    work, _ = two_stage_run
    results = work / "results"
    choice = json.loads((results / "tiny" / "form.json").read_text())
    val = {
        form: json.loads((results / folder / "val_evaluation" / "metrics.json").read_text())["AP50"]
        for form, folder in (("detector", "tiny"), ("two_stage", "tiny/two_stage"))
    }
    assert choice["val"]["detector"]["AP50"] == val["detector"]
    assert choice["val"]["two_stage"]["AP50"] == val["two_stage"]
    assert choice["kept"] == ("two_stage" if val["two_stage"] > val["detector"] else "detector")
    assert "val AP50" in choice["reason"]

    # A classifier that names every box as the next class: the two-stage form must now lose on val.
    train = read_shards(sorted((results / "box_classifier" / "features").glob("*.npz"))).subset("train")
    classes = sorted(set(train.labels.tolist()))
    train.labels = np.array([classes[(classes.index(c) + 1) % len(classes)] for c in train.labels])
    vocabulary = fit_vocabulary(train, 64, 0)
    settings = {**settings_from({"verify": False}), "crop_padding": 0.1}
    bad = tmp_path / "bad_saved_model"
    shutil.copytree(results / "tiny" / "two_stage" / "saved_model", bad)
    export(train, vocabulary, train_svm(train, vocabulary, 1.0, "balanced", 0.5), settings, bad / "classifier.joblib")
    bad_val = evaluate_model(
        bad,
        sorted(str(p) for p in (results / "data" / "records").glob("val-*.tfrecord")),
        tmp_path / "bad_val",
        originals=work / "photos",
        manifests=sorted((results / "data" / "shards").glob("*/manifest.json")),
    )
    assert bad_val["AP50"] < min(val["two_stage"], val["detector"])
    detector_val = results / "tiny" / "val_evaluation" / "metrics.json"
    worse = choose_form("tiny", "auto", detector_val, tmp_path / "bad_val" / "metrics.json")
    assert worse["kept"] == "detector"


@pytest.mark.slow
def test_detector_names_each_box_with_the_classifier_from_the_photo(two_stage_run, workflow_run: Path) -> None:
    from artdet.classify.boxes import BoxNamer
    from artdet.classify.dataset import load_rgb
    from artdet.deploy.runtime import Detector

    work, _ = two_stage_run
    saved = work / "results" / "tiny" / "two_stage" / "saved_model"
    photo = load_rgb(sorted((work / "photos").glob("*.jpg"))[0])
    named = Detector(saved)(photo)
    boxes = [d for d in Detector(saved, name_boxes=False)(photo) if d.score >= NAME_FLOOR]
    assert boxes
    namer = BoxNamer(saved / "classifier.joblib")
    expected = sorted(
        (round(score, 5), name, tuple(round(v, 2) for v in d.box))
        for d, classes in zip(boxes, namer.name(photo, [d.box for d in boxes], [d.score for d in boxes]), strict=True)
        for name, score in classes
    )
    got = sorted((round(d.score, 5), d.class_name, tuple(round(v, 2) for v in d.box)) for d in named)
    assert got == expected
    assert len(named) == len(boxes) * namer.top_k
    height, width = photo.shape[:2]
    edge = [(width - 0.5, 0.0, width, 10.0), (width + 5.0, height + 5.0, width + 9.0, height + 9.0), (3, 3, 3, 3)]
    assert all(len(classes) == namer.top_k for classes in namer.name(photo, edge, [0.5] * 3))

    # A TFLite file with the classifier beside it names its boxes the same way.
    lite = work / "lite"
    shutil.copytree(workflow_run / "results" / "tiny" / "tflite_int8", lite)
    shutil.copy(saved / "classifier.joblib", lite / "classifier.joblib")
    detector = Detector(lite / "model.tflite")
    found = detector(photo, min_score=0.05)
    assert found and all(d.box_score is not None and d.score <= d.box_score + 1e-6 for d in found)
    assert {d.class_name for d in found} <= set(namer.classes)


@pytest.mark.slow
def test_adding_a_photo_recomputes_the_box_features_of_its_shard_only(two_stage_run, venv_env: dict, tmp_path: Path):
    from artdet.data.demo import generate

    work, _ = two_stage_run
    copy_ = tmp_path / "copy"
    shutil.copytree(work, copy_, symlinks=True)
    generate(tmp_path / "more", count=1, seed=99)
    for suffix in (".jpg", ".xml"):
        shutil.copy(tmp_path / "more" / f"gallery_00000{suffix}", copy_ / "photos" / f"extra{suffix}")
    planned = planned_jobs(copy_, venv_env)
    assert planned["box_features"] == 1 and planned["validate"] == 1
    assert planned["box_classifier"] == 1


@pytest.mark.slow
def test_people_see_one_name_per_box_while_the_evaluation_keeps_every_class(two_stage_run, venv_env, tmp_path):
    import subprocess
    import sys

    work, _ = two_stage_run
    saved = work / "results" / "tiny" / "two_stage" / "saved_model"
    photos = tmp_path / "photos"
    photos.mkdir()
    for jpg in sorted((work / "photos").glob("*.jpg"))[:3]:
        shutil.copy(jpg, photos / jpg.name)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "artdet",
            "detect",
            str(saved),
            str(photos),
            "--out",
            str(tmp_path / "out"),
            "--min-score",
            "0.01",
            "--alternatives",
        ],
        env=venv_env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "detections.jsonl").read_text().splitlines()]
    boxes = [(r["file"], r["xmin"], r["ymin"], r["xmax"], r["ymax"]) for r in rows]
    assert rows and len(boxes) == len(set(boxes)), "a box listed twice"
    assert any(r["alternatives"] for r in rows)
    assert all(a["score"] <= r["score"] for r in rows for a in r["alternatives"])
    # The evaluation scores every class of a box: the same box appears with several classes.
    evaluated = json.loads(
        (work / "results" / "tiny" / "two_stage" / "evaluation" / "saved_model" / "detections.json").read_text()
    )
    per_box = [tuple(b) for row in evaluated for _, _, b in row["detections"]]
    assert len(per_box) > len(set(per_box))


@pytest.mark.slow
def test_the_http_answer_names_each_box_once_with_alternatives(two_stage_run) -> None:
    from fastapi.testclient import TestClient

    from artdet.deploy.serve import create_app

    work, _ = two_stage_run
    app = create_app({"cards": work / "results" / "tiny" / "two_stage" / "saved_model"})
    photo = sorted((work / "photos").glob("*.jpg"))[0]
    with TestClient(app) as client:
        answer = client.post(
            "/v1/detect?min_score=0.01", content=photo.read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
    assert answer.status_code == 200, answer.text
    detections = answer.json()["detections"]
    boxes = [tuple(d["box"].values()) for d in detections]
    assert detections and len(boxes) == len(set(boxes))
    assert any(d["alternatives"] for d in detections)
    assert all(a["score"] <= d["score"] and a["class"] != d["class"] for d in detections for a in d["alternatives"])
