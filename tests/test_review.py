"""The label review: held-out predictions put labels in doubt; the likely errors are ranked first."""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from artdet.data.folds import fold_of
from artdet.evaluate.label_review import SCORERS, ReviewImage, rank_issues


def _box(x: float, y: float = 10.0) -> tuple:
    return (x, y, x + 40.0, y + 40.0)


def _clean_set() -> list[ReviewImage]:
    """Six images of four boxes, each found by the model at 0.7-0.9, a few pixels off."""
    images = []
    for i in range(6):
        labels = [(k, "cat" if k % 2 else "dog", _box(60.0 * k)) for k in range(4)]
        predictions = [
            (name, 0.7 + 0.03 * ((i + k) % 7), (b[0] + 2, b[1] + 1, b[2] + 1, b[3] - 2)) for k, name, b in labels
        ]
        images.append(ReviewImage(f"im{i}.jpg", f"im{i}.xml", 400, 100, 1, 0, labels, predictions))
    return images


def _injected() -> tuple[list[ReviewImage], set[tuple]]:
    """One error of each kind; returns the images and (image, object or None, kind) of each."""
    images = _clean_set()
    images[1].labels[1] = (1, "dog", images[1].labels[1][2])  # a cat named dog
    index, name, box = images[2].labels[2]
    images[2].labels[2] = (index, name, (box[0] + 20, box[1], box[2] + 20, box[3]))  # shifted by half its width
    images[3].labels.append((4, "cat", (300.0, 50.0, 340.0, 90.0)))  # on nothing
    images[4].labels.pop(3)  # a box removed
    return images, {
        ("im1.jpg", 1, "class"),
        ("im2.jpg", 2, "location"),
        ("im3.jpg", 4, "spurious"),
        ("im4.jpg", None, "missing"),
    }


@pytest.mark.parametrize("scorer", SCORERS)
def test_each_kind_of_injected_error_is_ranked_above_every_clean_label(scorer: str) -> None:
    images, injected = _injected()
    ranked = rank_issues(images, ["cat", "dog"], scorer)
    top = {(i.image, i.object, i.kind) for i in ranked[: len(injected)]}
    assert top == injected, [(i.image, i.object, i.kind, i.suspicion) for i in ranked[:6]]
    by_kind = {i.kind: i for i in ranked[: len(injected)]}
    assert by_kind["class"].suggested_class == "cat" and by_kind["class"].suggestion == "rename to cat"
    assert by_kind["location"].suggested_box == (122.0, 11.0, 161.0, 48.0)  # the prediction on the object
    assert by_kind["missing"].suggested_class == "cat" and by_kind["missing"].object is None
    # Made to fail on purpose: without the errors, none of those places is ranked first.
    clean = rank_issues(_clean_set(), ["cat", "dog"], scorer)
    assert (clean[0].image, clean[0].object, clean[0].kind) not in injected
    assert clean[0].suspicion < min(i.suspicion for i in ranked[: len(injected)])


@pytest.mark.parametrize("scorer", SCORERS)
def test_one_swapped_label_in_a_tiny_set_is_ranked_first(scorer: str) -> None:
    images = _clean_set()
    images[3].labels[2] = (2, "cat", images[3].labels[2][2])  # a dog named cat
    first = rank_issues(images, ["cat", "dog"], scorer)[0]
    assert (first.image, first.object, first.kind, first.suggested_class) == ("im3.jpg", 2, "class", "dog")
    # Made to fail on purpose: without the swap, that box is not the first issue.
    clean = rank_issues(_clean_set(), ["cat", "dog"], scorer)[0]
    assert (clean.image, clean.object) != ("im3.jpg", 2)


def test_a_box_moved_off_its_object_outranks_a_loose_prediction_around_a_true_box() -> None:
    # Both labels overlap their prediction at IoU 1/3: one was moved by half its width (the model's box
    # has its size, elsewhere), the other is right and the model's box is three times as large around it.
    images = _clean_set()
    moved = images[1].labels[0][2]
    images[1].labels[0] = (0, images[1].labels[0][1], (moved[0] + 20, moved[1], moved[2] + 20, moved[3]))
    true_box = images[2].predictions[0][2]
    x, y = (true_box[0] + true_box[2]) / 2, (true_box[1] + true_box[3]) / 2
    loose = (x - 34.6, y - 34.6, x + 34.6, y + 34.6)  # about 3x the area, centred on the object
    images[2].predictions[0] = (images[2].predictions[0][0], images[1].predictions[0][1], loose)
    ranked = rank_issues(images, ["cat", "dog"], "artdet")
    places = [(i.image, i.object) for i in ranked]
    assert ranked[0].kind == "location" and places[0] == ("im1.jpg", 0), ranked[:3]
    assert places.index(("im2.jpg", 0)) > 0


def test_a_doubt_many_labels_share_ranks_below_a_rare_one() -> None:
    # The model finds nothing on a third of the true boxes (a weak detector): "nothing there" is common
    # and ranks below one confident prediction where no box is.
    images = _clean_set()
    for image in images[:2]:
        image.predictions = []
    images[4].predictions.append(("cat", 0.6, (300.0, 50.0, 340.0, 90.0)))
    ranked = rank_issues(images, ["cat", "dog"], "artdet")
    assert (ranked[0].image, ranked[0].kind) == ("im4.jpg", "missing"), ranked[:3]
    assert all(i.suspicion <= round(1 - 8 / 24, 4) for i in ranked if i.kind == "spurious")  # 4 decimals kept


def test_folds_follow_the_source_path_alone() -> None:
    sources = [f"photos/p{i:03}.jpg" for i in range(400)]
    folds = [fold_of(s, 4) for s in sources]
    assert set(folds) == {0, 1, 2, 3} and min(folds.count(k) for k in range(4)) > 70
    # Adding photos leaves every other photo in its fold.
    assert [fold_of(s, 4) for s in sources] == folds


@pytest.mark.slow
def test_a_swapped_label_on_real_predictions_is_the_first_doubt_on_a_label(workflow_run: Path) -> None:
    """The trained model never saw the test split: its predictions there are held out."""
    from artdet.evaluate.review_outputs import fold_images, predict

    results = workflow_run / "results"
    split = {}
    for path in (results / "data" / "shards").glob("*/split.csv"):
        with open(path, newline="") as handle:
            split.update({row["source"]: row["split"] for row in csv.DictReader(handle)})
    folds = {source: 0 for source, side in split.items() if side == "test"}
    images = fold_images(folds, 0, sorted((results / "data" / "shards").glob("*/validated.json")))
    assert len(images) == len(folds) and sum(len(i.labels) for i in images) >= 5
    predict(results / "tiny" / "saved_model", images, workflow_run / "photos")
    classes = sorted({name for i in images for _, name, _ in i.labels} | {p[0] for i in images for p in i.predictions})

    # The label the model is surest of: another class put on it must be the first issue.
    def support(image: ReviewImage, label: tuple) -> float:
        from artdet.data.geometry import iou_matrix

        same = [p for p in image.predictions if p[0] == label[1]]
        ious = iou_matrix([label[2]], [p[2] for p in same])[0] if same else []
        return max((p[1] for p, iou in zip(same, ious, strict=True) if iou >= 0.5), default=0.0)

    image, label = max(((i, lab) for i in images for lab in i.labels), key=lambda pair: support(*pair))
    wrong = next(c for c in classes if c != label[1])

    # A model trained for a minute misses some true boxes (they look like boxes on nothing) and is
    # sure of some boxes no one labelled (missing-box doubts, ranked with the others): the swap must
    # be the most suspicious doubt on a label (level with any other, ties go by name), named as a
    # swap, with the right class to rename to. The default scorer's promise (cleanlab's swap score,
    # the other choice, is measured by bench/review.py and ranks this swap lower on a set this small).
    def first_doubts_on_labels(ranked: list) -> list:
        on_labels = [i for i in ranked if i.object is not None]
        return [i for i in on_labels if i.suspicion == on_labels[0].suspicion]

    for scorer in SCORERS[:1]:
        clean = first_doubts_on_labels(rank_issues(copy.deepcopy(images), classes, scorer))
        assert (image.source, label[0]) not in {(i.image, i.object) for i in clean}, scorer
        swapped = copy.deepcopy(images)
        target = next(i for i in swapped if i.source == image.source)
        target.labels = [(i, wrong if i == label[0] else n, b) for i, n, b in target.labels]
        top = first_doubts_on_labels(rank_issues(swapped, classes, scorer))
        hit = [i for i in top if (i.image, i.object) == (image.source, label[0])]
        assert hit and hit[0].kind == "class" and hit[0].suggested_class == label[1], (scorer, top)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_snakemake_review_ranks_every_label_and_leaves_the_dataset_alone(
    workflow_run: Path, venv_env: dict, tmp_path: Path
) -> None:
    from workflow_helpers import planned_jobs, snakemake

    work = tmp_path / "run"
    shutil.copytree(workflow_run, work, symlinks=True)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config["review"] = {"folds": 2, "time_budget": "15s", "thumbnails": 20}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    before = _tree_digest(work / "photos")
    planned = planned_jobs(work, venv_env)
    assert not planned, f"the review is not part of the default run: {planned}"
    snakemake(work, venv_env, "review")
    assert _tree_digest(work / "photos") == before, "the review must not change the dataset"

    review = work / "results" / "review"
    with open(review / "issues.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = sum(
        len(item["objects"])
        for path in (work / "results" / "data" / "shards").glob("*/validated.json")
        for item in json.loads(path.read_text())["images"]
    )
    assert sum(1 for r in rows if r["object"] != "") == labels, "every label box is ranked"
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    suspicion = [float(r["suspicion"]) for r in rows]
    assert suspicion == sorted(suspicion, reverse=True)
    assert {r["kind"] for r in rows} <= {"class", "location", "spurious", "missing"}
    listed = (review / "images.txt").read_text().split()
    assert listed and all(Path(p).is_file() for p in listed)
    assert (review / "review.html").read_text().count("<figure>") == min(20, len(rows))
    # Each fold's detector trained on the other fold only.
    for fold in (0, 1):
        pipeline = yaml.safe_load((review / f"fold{fold}" / "pipeline.yaml").read_text())
        assert pipeline["task"]["train_data"]["input_path"].endswith(f"fold{1 - fold}.tfrecord")
    assert planned_jobs(work, venv_env, "review") == {}
