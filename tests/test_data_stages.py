"""Unit tests of the data stages: resize, split, CSV, label map, TFRecord."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from artdet.data.classes import discover_classes
from artdet.data.dataset import DatasetError, Sample, find_pairs, read_manifest
from artdet.data.label_map import format_label_map, read_label_map, write_label_map
from artdet.data.labels_csv import CSV_COLUMNS, merge_csv, write_labels
from artdet.data.resize import resize_images
from artdet.data.split import SIDES, PinsError, assign_splits, check_fractions, read_pins
from artdet.data.validate import validate_dataset
from artdet.data.voc import Annotation, Box, write_voc


def resize_dataset(src: Path, out: Path, manifest: Path, **limits) -> list[Sample]:
    """Validate then resize, as the workflow's first two stages do."""
    return resize_images(src, validate_dataset(src), out, manifest, **limits)


def _photo(path: Path, size: tuple[int, int], fmt: str = "JPEG", mode: str = "RGB") -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    image.save(path, format=fmt)


def test_find_pairs_by_stem_in_nested_folders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _photo(tmp_path / "a.JPG", (20, 10))
    _photo(tmp_path / "sub" / "b.png", (20, 10), fmt="PNG")
    write_voc(Annotation("zzz.jpg", 20, 10, boxes=[]), tmp_path / "a.xml")
    pairs = find_pairs(tmp_path)
    assert [(p.name, x.name if x else None) for p, x in pairs] == [("a.JPG", "a.xml"), ("b.png", None)]


def test_xml_without_image_is_an_error_naming_it(tmp_path: Path) -> None:
    write_voc(Annotation("lost.jpg", 20, 10), tmp_path / "lost.xml")
    with pytest.raises(DatasetError, match=r"lost\.xml"):
        find_pairs(tmp_path)


def test_resize_scales_boxes_and_copies_small_jpegs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _photo(src / "big.jpg", (800, 400))
    write_voc(Annotation("big.jpg", 800, 400, boxes=[Box("a", 100, 50, 500, 250)]), src / "big.xml")
    _photo(src / "small.jpg", (100, 60))
    write_voc(Annotation("small.jpg", 100, 60, boxes=[Box("b", 10, 10, 90, 50)]), src / "small.xml")
    _photo(src / "icon.png", (60, 60), fmt="PNG", mode="RGBA")
    samples = resize_dataset(src, tmp_path / "out", tmp_path / "manifest.json", max_side=200, max_bytes=150_000)
    by_name = {s.image: s for s in samples}
    big = by_name["big.jpg"]
    assert (big.width, big.height) == (200, 100)
    assert Image.open(tmp_path / "out" / "big.jpg").size == (200, 100)
    box = big.objects[0]
    assert (box["xmin"], box["ymin"], box["xmax"], box["ymax"]) == (25.0, 12.5, 125.0, 62.5)
    assert (tmp_path / "out" / "small.jpg").read_bytes() == (src / "small.jpg").read_bytes()
    icon = by_name["icon.jpg"]
    assert icon.objects == [] and Image.open(tmp_path / "out" / "icon.jpg").format == "JPEG"
    assert read_manifest(tmp_path / "manifest.json") == samples


def test_resize_meets_the_byte_budget(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _photo(src / "noisy.png", (600, 600), fmt="PNG")
    resize_dataset(src, tmp_path / "out", tmp_path / "m.json", max_side=600, max_bytes=120_000)
    assert (tmp_path / "out" / "noisy.jpg").stat().st_size <= 120_000


def _samples(n: int, offset: int = 0) -> list[Sample]:
    import hashlib

    return [
        Sample(
            image=f"img{i}.jpg",
            annotation=None,
            width=10,
            height=10,
            sha1=hashlib.sha1(str(i).encode()).hexdigest(),
            dhash=hashlib.sha1(f"d{i}".encode()).hexdigest()[:16],
        )
        for i in range(offset, offset + n)
    ]


def test_split_is_stable_when_images_are_added() -> None:
    first = assign_splits(_samples(200), 0.2, seed=0, val_fraction=0.1)
    more = assign_splits(_samples(200) + _samples(100, offset=200), 0.2, seed=0, val_fraction=0.1)
    assert all(more[name] == side for name, side in first.items())
    assert {"train", "val", "test"} == set(first.values())
    fraction = {side: sum(s == side for s in more.values()) / len(more) for side in SIDES}
    assert 0.12 < fraction["test"] < 0.28
    assert 0.05 < fraction["val"] < 0.15
    reseeded = assign_splits(_samples(200), 0.2, seed=1, val_fraction=0.1)
    assert reseeded != first


def test_val_comes_out_of_train_and_never_changes_the_test_set() -> None:
    """Test membership depends on test_fraction and the seed only, whatever val_fraction is."""
    samples = _samples(500)
    two_way = assign_splits(samples, 0.2, seed=0, val_fraction=0)
    assert set(two_way.values()) == {"train", "test"}
    tests = {name for name, side in two_way.items() if side == "test"}
    for val_fraction in (0.1, 0.3):
        sides = assign_splits(samples, 0.2, seed=0, val_fraction=val_fraction)
        assert {name for name, side in sides.items() if side == "test"} == tests
        val = {name for name, side in sides.items() if side == "val"}
        assert val and not val & tests
        assert all(two_way[name] == "train" for name in val)
    # A larger val split takes more from train and keeps the smaller one's val images.
    small = assign_splits(samples, 0.2, seed=0, val_fraction=0.1)
    large = assign_splits(samples, 0.2, seed=0, val_fraction=0.3)
    assert all(large[name] == "val" for name, side in small.items() if side == "val")


def test_fractions_must_leave_images_to_train_on() -> None:
    check_fractions(0.2, 0)
    with pytest.raises(ValueError, match=r"test_fraction \(0\.5\) \+ val_fraction \(0\.5\) must be below 1"):
        assign_splits(_samples(3), 0.5, seed=0, val_fraction=0.5)
    with pytest.raises(ValueError, match=r"val_fraction is -0\.1; it must be at least 0"):
        check_fractions(0.2, -0.1)


def test_pins_accept_val_and_name_the_file_and_line_of_a_bad_side(tmp_path: Path) -> None:
    pins = tmp_path / "pins.csv"
    pins.write_text("image,split\n# kept together\nimg1.jpg,val\nsub/img2.jpg, TEST\nimg3.jpg,train\n")
    assert read_pins(pins) == {"img1.jpg": "val", "sub/img2.jpg": "test", "img3.jpg": "train"}
    samples = _samples(300)
    hashed = assign_splits(samples, 0.2, seed=0, val_fraction=0.1)
    on_test = next(name for name, side in hashed.items() if side == "test")
    pinned = assign_splits(samples, 0.2, seed=0, pins={on_test: "val"}, val_fraction=0.1)
    assert pinned[on_test] == "val"
    # A pin to val works with no val fraction too.
    assert assign_splits(samples, 0.2, seed=0, pins={on_test: "val"})[on_test] == "val"
    pins.write_text("img1.jpg,val\nimg2.jpg,validation\n")
    with pytest.raises(PinsError) as error:
        read_pins(pins)
    assert str(error.value) == (
        f"{pins}, line 2: expected one of 'image,train', 'image,val', 'image,test', got 'img2.jpg,validation'"
    )


def test_split_keeps_identical_perceptual_hashes_together_and_obeys_pins() -> None:
    samples = _samples(300)
    for copy in samples[100:110]:  # ten re-saved copies of image 0
        copy.dhash, copy.sha1 = samples[0].dhash, copy.sha1
    sides = assign_splits(samples, 0.2, seed=0)
    assert len({sides[s.image] for s in [samples[0], *samples[100:110]]}) == 1
    other = "train" if sides["img5.jpg"] == "test" else "test"
    pinned = assign_splits(samples, 0.2, seed=0, pins={"img5.jpg": other})
    assert pinned["img5.jpg"] == other
    assert {k: v for k, v in pinned.items() if k != "img5.jpg"} == {k: v for k, v in sides.items() if k != "img5.jpg"}


def test_flat_images_fall_back_to_the_byte_hash() -> None:
    samples = _samples(200)
    for s in samples:
        s.dhash = "0" * 16  # uniform images: their dHash says nothing
    fraction = sum(side == "test" for side in assign_splits(samples, 0.2, seed=0).values()) / 200
    assert 0.1 < fraction < 0.3


def test_labels_csv_has_tutorial_columns(tmp_path: Path) -> None:
    samples = _samples(2)
    samples[0].objects = [{"name": "a", "xmin": 1.0, "ymin": 2.0, "xmax": 3.0, "ymax": 4.0}]
    sides = {samples[0].image: "train", samples[1].image: "test"}
    assert write_labels(samples, sides, "train", tmp_path / "train.csv") == 1
    frame = pd.read_csv(tmp_path / "train.csv")
    assert list(frame.columns[:8]) == CSV_COLUMNS
    assert frame.iloc[0][CSV_COLUMNS].tolist() == ["img0.jpg", 10, 10, "a", 1.0, 2.0, 3.0, 4.0]
    assert write_labels(samples, sides, "test", tmp_path / "test.csv") == 0
    assert write_labels(samples, sides, "val", tmp_path / "val.csv") == 0
    assert pd.read_csv(tmp_path / "val.csv").columns.tolist()[:8] == CSV_COLUMNS
    assert write_labels(samples, {**sides, samples[0].image: "val"}, "val", tmp_path / "val.csv") == 1


def test_label_map_ids_from_one_in_stable_order(tmp_path: Path) -> None:
    assert discover_classes(["b", "a", "b"]) == ["a", "b"]
    assert discover_classes(["Raccoon", "raccoon ", "raccoon", " RACCOON"]) == ["raccoon"]
    write_label_map(["Mona Lisa", "it's"], tmp_path / "map.pbtxt")
    assert format_label_map(["x"]) == "item {\n  id: 1\n  name: 'x'\n}\n"
    assert read_label_map(tmp_path / "map.pbtxt") == {1: "Mona Lisa", 2: "it's"}


def test_merge_csv_keeps_one_header(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,y\n3,4\n5,6\n")
    assert merge_csv([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "m.csv") == 3
    assert (tmp_path / "m.csv").read_text() == "x,y\n1,2\n3,4\n5,6\n"
    (tmp_path / "c.csv").write_text("z\n7\n")
    with pytest.raises(ValueError, match=r"c\.csv: its header differs"):
        merge_csv([tmp_path / "a.csv", tmp_path / "c.csv"], tmp_path / "m.csv")


def test_tfrecord_holds_normalised_boxes_and_negatives(tmp_path: Path) -> None:
    from artdet.data.tfrecord import read_examples, write_records

    images = tmp_path / "images"
    images.mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (255, 0, 0)).save(buffer, format="JPEG")
    for name in ("pos.jpg", "neg.jpg"):
        (images / name).write_bytes(buffer.getvalue())
    samples = [
        Sample(
            "pos.jpg",
            "pos.xml",
            200,
            100,
            [{"name": "b", "xmin": 20.0, "ymin": 10.0, "xmax": 120.0, "ymax": 90.0, "difficult": True}],
            sha1="ab" * 20,
        ),
        Sample("neg.jpg", None, 200, 100, [], sha1="cd" * 20),
    ]
    sides = {"pos.jpg": "train", "neg.jpg": "train"}
    count = write_records(samples, sides, "train", images, {"a": 1, "b": 2}, tmp_path / "train.record")
    assert count == 2
    pos, neg = read_examples(tmp_path / "train.record")
    assert pos["image/filename"] == b"pos.jpg" and pos["image/width"] == 200
    np.testing.assert_allclose(pos["image/object/bbox/xmin"], [0.1])
    np.testing.assert_allclose(pos["image/object/bbox/ymax"], [0.9])
    assert pos["image/object/class/label"].tolist() == [2]
    assert pos["image/object/class/text"].tolist() == [b"b"]
    assert int(pos["image/source_id"]) > 0
    assert neg["image/object/class/label"].size == 0

    with pytest.raises(ValueError, match=r"pos\.jpg: labels \['b'\] are not in the label map"):
        write_records(samples, sides, "train", images, {"a": 1}, tmp_path / "bad.record")


def test_records_of_the_raccoon_dataset_keep_every_box(tmp_path: Path) -> None:
    """Real LabelImg data (images/ and annotations/ apart): every image and box reaches the records."""
    from artdet.data.prepare import prepare_dataset
    from artdet.data.tfrecord import read_examples
    from conftest import SHARED

    source = SHARED / "datasets" / "raccoon"
    if not source.is_dir():
        pytest.fail(f"{source} is missing: the shared raccoon dataset is part of the test fixtures")
    local = tmp_path / "raccoon"
    shutil.copytree(source, local)
    counts = prepare_dataset(local, tmp_path / "out", max_side=640, shards=3)
    assert sum(counts.values()) == 200 and all(counts[side] > 0 for side in SIDES)
    examples = [ex for s in SIDES for ex in read_examples(tmp_path / "out" / f"{s}.record")]
    assert len(examples) == 200
    assert sum(len(ex["image/object/class/label"]) for ex in examples) == 217
    assert read_label_map(tmp_path / "out" / "label_map.pbtxt") == {1: "raccoon"}
    # The three grey-scale JPEGs are converted to RGB, and the report says so.
    report = json.loads((tmp_path / "out" / "validation_report.json").read_text())
    assert report["accounted"] and report["totals"]["boxes_written"] == 217
    assert {side: report["totals"][f"{side}_images"] for side in SIDES} == counts
    assert sum(report["totals"][f"{side}_boxes"] for side in SIDES) == 217
    grey = {row["file"] for row in report["issues"]["image_converted"]}
    assert grey == {"images/raccoon-150.jpg", "images/raccoon-152.jpg", "images/raccoon-161.jpg"}
    for ex in examples:
        if ex["image/filename"].decode() in {"images/raccoon-150.jpg", "images/raccoon-152.jpg"}:
            assert Image.open(io.BytesIO(ex["image/encoded"])).mode == "RGB"
    # The dataset holds re-saved copies of a few photos. Identical dHashes share a side; one group
    # whose hashes differ in a few bits lands on train and val, and the report gives the pins that
    # keep it together (on the side most of it is on).
    groups = report["near_duplicates"]["groups"]
    assert ["images/raccoon-116.jpg", "images/raccoon-11.jpg"] in groups
    group = ["images/raccoon-52.jpg", "images/raccoon-50.jpg", "images/raccoon-74.jpg"]
    assert report["near_duplicates"]["across_split"] == [{"images": group, "pins": [f"{g},val" for g in group]}]
    assert report["issue_counts"]["near_duplicate_split"] == 1
    pins = {name: "val" for name in group}
    counts = prepare_dataset(local, tmp_path / "pinned", max_side=640, shards=3, pins=pins)
    report = json.loads((tmp_path / "pinned" / "validation_report.json").read_text())
    assert report["near_duplicates"]["across_split"] == [] and "near_duplicate_split" not in report["issue_counts"]
    assert sum(counts.values()) == 200


def test_find_pairs_across_images_and_annotations_folders(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    _photo(tmp_path / "images" / "r1.jpg", (20, 10))
    _photo(tmp_path / "images" / "r2.jpg", (20, 10))
    write_voc(Annotation("r1.jpg", 20, 10), tmp_path / "annotations" / "r1.xml")
    pairs = find_pairs(tmp_path)
    assert [(p.name, x.name if x else None) for p, x in pairs] == [("r1.jpg", "r1.xml"), ("r2.jpg", None)]


def test_records_written_without_tensorflow_read_back_exactly_with_it(tmp_path: Path) -> None:
    import tensorflow as tf

    from artdet.data.example_proto import RecordWriter
    from artdet.data.tfrecord import make_example

    boxes = [{"class": "a", "xmin": 1.5, "ymin": 2.0, "xmax": 30.25, "ymax": 40.0, "difficult": 1}]
    ours = [
        make_example(b"\xff\xd8jpeg", "x.jpg", "123", 64, 48, boxes, {"a": 7}),
        make_example(b"\x89PNG\r\n\x1a\npng", "y.png", "456", 10, 10, [], {"a": 7}),
    ]
    with RecordWriter(tmp_path / "r.tfrecord") as writer:
        for example in ours:
            writer.write(example.SerializeToString())
    theirs = [tf.train.Example.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(str(tmp_path / "r.tfrecord"))]
    assert len(theirs) == 2
    first = theirs[0].features.feature
    assert first["image/object/class/label"].int64_list.value == [7]
    assert first["image/object/bbox/xmax"].float_list.value == [pytest.approx(30.25 / 64)]
    assert first["image/object/difficult"].int64_list.value == [1]
    assert first["image/format"].bytes_list.value == [b"jpeg"]
    second = theirs[1].features.feature
    assert second["image/format"].bytes_list.value == [b"png"]
    assert second["image/object/bbox/xmin"].WhichOneof("kind") == "float_list"
    assert tf.train.Example.FromString(ours[0].SerializeToString()) == theirs[0]
