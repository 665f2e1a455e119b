"""Bad real-world input: every case is built here and its exact outcome asserted.

The outcome is the record written (decoded, with the box checked against the
object's pixels), the repair in the report, or an error naming the file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artdet.data.dataset import DatasetError, find_pairs, shard_of
from artdet.data.prepare import prepare_dataset
from artdet.data.split import SIDES
from artdet.data.tfrecord import read_examples
from artdet.data.validate import ORIENT_TRANSPOSE, Options, ValidationError, orient_box, validate_dataset
from artdet.data.voc import Annotation, Box, write_voc

RED = (230, 20, 20)


def _scene(size: tuple[int, int], box: tuple[int, int, int, int], background=(40, 90, 200)) -> Image.Image:
    """A flat image with a red rectangle (the 'object') at ``box`` and some texture elsewhere."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[..., 0] = background[0]
    pixels[..., 1] = (background[1] + xx * 97 // w) % 256
    pixels[..., 2] = (background[2] + yy * 53 // h) % 256
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = RED
    return Image.fromarray(pixels)


def _voc(path: Path, size: tuple[int, int] | None, boxes: list[Box]) -> None:
    write_voc(
        Annotation(path.with_suffix(".jpg").name, size[0] if size else None, size[1] if size else None, boxes=boxes),
        path,
    )
    if size is None:
        text = path.read_text()
        start, end = text.index("<size>"), text.index("</size>") + len("</size>")
        path.write_text(text[:start] + text[end:])


def _records(out: Path) -> dict[str, dict]:
    return {ex["image/filename"].decode(): ex for split in SIDES for ex in read_examples(out / f"{split}.record")}


def _pixels(example: dict) -> np.ndarray:
    image = Image.open(io.BytesIO(example["image/encoded"]))
    assert image.mode == "RGB"
    return np.asarray(image)


def _box_px(example: dict, index: int = 0) -> tuple[int, int, int, int]:
    w, h = int(example["image/width"]), int(example["image/height"])
    return tuple(
        round(float(example[f"image/object/bbox/{k}"][index]) * (w if k[0] == "x" else h))
        for k in ("xmin", "ymin", "xmax", "ymax")
    )


def _redness_inside(example: dict, index: int = 0) -> float:
    """The fraction of clearly red pixels inside box ``index`` of a decoded record."""
    pixels = _pixels(example).astype(int)
    x0, y0, x1, y1 = _box_px(example, index)
    inner = pixels[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    red = (inner[..., 0] > 150) & (inner[..., 1] < 90) & (inner[..., 2] < 90)
    return float(red.mean())


def _report(out: Path) -> dict:
    return json.loads((out / "validation_report.json").read_text())


# --- pairing -------------------------------------------------------------------------------------


def test_pairs_by_stem_with_any_extension_case_and_nesting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for rel, fmt in [
        ("a.JPG", "JPEG"),
        ("x/b.jpeg", "JPEG"),
        ("x/y/c.PNG", "PNG"),
        ("d.bmp", "BMP"),
        ("e.gif", "GIF"),
        ("f.webp", "WEBP"),
        ("g.TIF", "TIFF"),
    ]:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        _scene((80, 60), (10, 10, 40, 40)).save(data / rel, format=fmt)
    (data / "labels").mkdir()
    for stem in "abcdefg":
        # <filename> and <path> point at the labeller's machine; only the stem counts.
        _voc(data / "labels" / f"{stem}.xml", (80, 60), [Box("thing", 10, 10, 40, 40)])
        xml = (data / "labels" / f"{stem}.xml").read_text().replace("<path></path>", r"<path>C:\Users\me\x.jpg</path>")
        (data / "labels" / f"{stem}.xml").write_text(xml)
    pairs = find_pairs(data)
    assert [(p.name, x.name) for p, x in pairs] == [
        ("a.JPG", "a.xml"),
        ("d.bmp", "d.xml"),
        ("e.gif", "e.xml"),
        ("f.webp", "f.xml"),
        ("g.TIF", "g.xml"),
        ("b.jpeg", "b.xml"),
        ("c.PNG", "c.xml"),
    ]
    out = tmp_path / "out"
    prepare_dataset(data, out, test_fraction=0.01)
    records = _records(out)
    assert sorted(records) == ["a.JPG", "d.jpg", "e.jpg", "f.jpg", "g.jpg", "x/b.jpeg", "x/y/c.PNG"]
    for name, ex in records.items():
        assert _redness_inside(ex) > 0.8, name
    reencoded = {row["file"] for row in _report(out)["issues"]["image_reencoded"]}
    assert reencoded == {"d.bmp", "e.gif", "f.webp", "g.TIF"}
    for name in ("d.jpg", "e.jpg", "f.jpg", "g.jpg"):
        assert records[name]["image/encoded"][:2] == b"\xff\xd8"  # JPEG


def test_an_image_and_its_xml_always_share_a_shard(tmp_path: Path) -> None:
    for i in range(40):
        Image.new("RGB", (8, 8)).save(tmp_path / f"img{i}.jpg")
        _voc(tmp_path / f"img{i}.xml", (8, 8), [])
    everything = find_pairs(tmp_path)
    by_shard = [find_pairs(tmp_path, shard=k, shards=5) for k in range(5)]
    assert sorted(p for shard in by_shard for p in shard) == sorted(everything)
    for k, pairs in enumerate(by_shard):
        assert all(shard_of(img.stem, 5) == k and xml.stem == img.stem for img, xml in pairs)


def test_xml_without_image_is_an_error_naming_it(tmp_path: Path) -> None:
    _voc(tmp_path / "lonely.xml", (10, 10), [])
    with pytest.raises(DatasetError, match=r"lonely\.xml"):
        validate_dataset(tmp_path)


def test_broken_xml_is_an_error_naming_it(tmp_path: Path) -> None:
    _scene((40, 40), (5, 5, 20, 20)).save(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text("<annotation><object><name>x</name>")
    with pytest.raises(ValidationError, match=r"a\.xml: not a readable XML file.*fix or delete"):
        validate_dataset(tmp_path)


# --- XML by tag name ---------------------------------------------------------------------------


def test_extra_tags_float_coordinates_missing_size_and_flags(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _scene((200, 100), (50, 20, 120, 80)).save(data / "a.jpg", quality=95)
    (data / "a.xml").write_text(
        "<annotation><folder>x</folder><filename>elsewhere.jpg</filename>"
        "<object><occluded>1</occluded><name>thing</name><attributes><attribute>a</attribute></attributes>"
        "<bndbox><ymax>80.4</ymax><xmin>49.6</xmin><xmax>120.2</xmax><ymin>19.5</ymin></bndbox>"
        "<difficult>1</difficult><truncated>1</truncated></object>"
        "<object><name>thing</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>30</ymax></bndbox>"
        "</object></annotation>"
    )
    out = tmp_path / "out"
    prepare_dataset(data, out)
    (example,) = _records(out).values()
    np.testing.assert_allclose(example["image/object/bbox/xmin"], [49.6 / 200, 1 / 200], rtol=1e-5)
    np.testing.assert_allclose(example["image/object/bbox/ymax"], [80.4 / 100, 30 / 100], rtol=1e-5)
    assert _redness_inside(example) > 0.9
    (raw,) = [r for side in SIDES if (r := read_examples_raw(out / f"{side}.record"))]
    assert raw["image/object/difficult"] == [1, 0] and raw["image/object/truncated"] == [1, 0]
    report = _report(out)
    assert report["issues"]["size_missing"] == [{"file": "a.xml", "message": "no <size>; using the image's 200x100"}]


def read_examples_raw(path: Path) -> dict | None:
    """The int64 flag features of the first example in ``path`` (None when it is empty)."""
    import tensorflow as tf

    for raw in tf.data.TFRecordDataset(str(path)):
        example = tf.train.Example.FromString(raw.numpy())
        f = example.features.feature
        return {k: list(f[k].int64_list.value) for k in ("image/object/difficult", "image/object/truncated")}
    return None


# --- box repairs ---------------------------------------------------------------------------------


def test_boxes_are_clipped_swapped_or_dropped_and_each_repair_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _scene((100, 80), (20, 20, 60, 60)).save(data / "a.jpg", quality=95)
    _voc(
        data / "a.xml",
        (100, 80),
        [
            Box("thing", 60, 60, 20, 20),  # 0: corners swapped
            Box("thing", -10, 20, 60, 95),  # 1: outside the image
            Box("thing", 150, 10, 170, 20),  # 2: entirely outside
            Box("thing", 30, 30, 30, 50),  # 3: zero width
            Box("thing", 20, 20, 60, 60),  # 4: fine
        ],
    )
    out = tmp_path / "out"
    prepare_dataset(data, out)
    (example,) = _records(out).values()
    assert [_box_px(example, i) for i in range(3)] == [(20, 20, 60, 60), (0, 20, 60, 80), (20, 20, 60, 60)]
    assert _redness_inside(example, 0) > 0.95
    report = _report(out)
    assert [(r["file"], r["object"]) for r in report["issues"]["box_swapped"]] == [("a.xml", 0)]
    assert [(r["file"], r["object"]) for r in report["issues"]["box_clipped"]] == [("a.xml", 1)]
    assert [(r["file"], r["object"], r["dropped"]) for r in report["issues"]["box_empty"]] == [
        ("a.xml", 2, "box"),
        ("a.xml", 3, "box"),
    ]
    assert {"boxes_found": 5, "boxes_written": 3, "boxes_dropped": 2}.items() <= report["totals"].items()
    assert report["accounted"]


def test_xml_size_differing_from_the_image_rescales_the_boxes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # Labelled at 400x300, then the user shrank the photo to 200x150.
    _scene((200, 150), (50, 25, 100, 75)).save(data / "a.jpg", quality=95)
    _voc(data / "a.xml", (400, 300), [Box("thing", 100, 50, 200, 150)])
    out = tmp_path / "out"
    prepare_dataset(data, out)
    (example,) = _records(out).values()
    assert _box_px(example) == (50, 25, 100, 75)
    assert _report(out)["issue_counts"]["size_mismatch"] == 1


# --- EXIF orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_follows_the_pixels(orientation: int) -> None:
    w, h, box = 60, 40, (5, 8, 20, 30)
    stored = np.zeros((h, w), np.uint8)
    stored[box[1] : box[3], box[0] : box[2]] = 255
    image = Image.fromarray(stored)
    if orientation in ORIENT_TRANSPOSE:
        image = image.transpose(ORIENT_TRANSPOSE[orientation])
    ys, xs = np.nonzero(np.asarray(image))
    assert orient_box(box, orientation, w, h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def _exif_photo(path: Path, stored_box: tuple[int, int, int, int], orientation: int) -> None:
    image = _scene((120, 80), stored_box)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("labelled_on", ["stored", "oriented"])
def test_exif_rotated_photo_gets_upright_pixels_and_matching_boxes(tmp_path: Path, labelled_on: str) -> None:
    """LabelImg draws on the stored pixels; other tools on the rotated ones. The XML <size> tells which."""
    data = tmp_path / "data"
    data.mkdir()
    stored_box = (10, 15, 50, 45)
    _exif_photo(data / "phone.jpg", stored_box, orientation=6)  # 120x80 stored, shown 80x120
    if labelled_on == "stored":
        _voc(data / "phone.xml", (120, 80), [Box("thing", *stored_box)])
    else:
        _voc(data / "phone.xml", (80, 120), [Box("thing", *orient_box(stored_box, 6, 120, 80))])
    out = tmp_path / "out"
    prepare_dataset(data, out)
    (example,) = _records(out).values()
    assert (int(example["image/width"]), int(example["image/height"])) == (80, 120)
    assert _pixels(example).shape == (120, 80, 3)
    assert _redness_inside(example) > 0.9
    kinds = _report(out)["issue_counts"]
    assert kinds.get("exif_oriented", 0) == (labelled_on == "stored")
    assert "exif_ambiguous" not in kinds


def test_exif_flip_that_sizes_cannot_explain_is_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _exif_photo(data / "flip.jpg", (10, 15, 50, 45), orientation=3)  # 180 degrees: same size either way
    _voc(data / "flip.xml", (120, 80), [Box("thing", 10, 15, 50, 45)])
    out = tmp_path / "out"
    prepare_dataset(data, out)  # assumes stored pixels, as LabelImg
    (example,) = _records(out).values()
    assert _redness_inside(example) > 0.9
    assert _report(out)["issue_counts"]["exif_ambiguous"] == 1
    with pytest.raises(ValidationError, match=r"(?s)strict: 1 warning.*flip\.jpg: EXIF orientation 3"):
        validate_dataset(data, Options(strict=True))
    assert validate_dataset(data, Options(strict=True, exif_boxes="stored")).issues[0].kind == "exif_oriented"


# --- image modes and formats -------------------------------------------------------------------


def test_every_image_mode_becomes_8_bit_rgb(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    box = Box("thing", 10, 10, 30, 30)
    grey = Image.new("L", (40, 40), 77)
    grey.save(data / "grey.jpg")
    Image.new("P", (40, 40), 3).save(data / "palette.png")  # palette index 3 of the default palette
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((200, 0, 0, 255), (10, 10, 30, 30))
    rgba.save(data / "alpha.png")
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(data / "cmyk.jpg")  # red in CMYK
    deep = np.full((40, 40), 65535, np.uint16)
    deep[:20] = 256 * 100
    Image.fromarray(deep).save(data / "deep.png")
    assert Image.open(data / "deep.png").mode.startswith("I")
    for stem in ("grey", "palette", "alpha", "cmyk", "deep"):
        _voc(data / f"{stem}.xml", (40, 40), [box])
    out = tmp_path / "out"
    prepare_dataset(data, out)
    records = _records(out)
    pixel = {name: _pixels(ex)[35, 5] for name, ex in records.items()}
    assert abs(int(pixel["grey.jpg"][0]) - 77) <= 2 and len(set(pixel["grey.jpg"])) == 1
    assert (pixel["alpha.jpg"] >= 250).all(), "transparent pixels go onto white"
    assert _redness_inside(records["alpha.jpg"]) > 0.9
    assert pixel["cmyk.jpg"][0] > 200 and pixel["cmyk.jpg"][1] < 60
    assert (pixel["deep.jpg"] >= 250).all() and abs(int(_pixels(records["deep.jpg"])[5, 5, 0]) - 100) <= 3
    converted = {row["file"]: row["message"] for row in _report(out)["issues"]["image_converted"]}
    assert set(converted) == {"grey.jpg", "palette.png", "alpha.png", "cmyk.jpg", "deep.png"}
    assert "mode CMYK" in converted["cmyk.jpg"]


def test_truncated_and_unreadable_images_are_reported_not_fatal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _scene((100, 80), (20, 20, 60, 60)).save(data / "good.jpg")
    buffer = io.BytesIO()
    _scene((300, 200), (20, 20, 60, 60)).save(buffer, format="JPEG")
    (data / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (data / "junk.png").write_bytes(b"not an image at all")
    for stem, size in (("good", (100, 80)), ("cut", (300, 200)), ("junk", (10, 10))):
        _voc(data / f"{stem}.xml", size, [Box("thing", 20, 20, 60, 60), Box("thing", 1, 1, 5, 5)])
    out = tmp_path / "out"
    prepare_dataset(data, out)
    assert list(_records(out)) == ["good.jpg"]
    report = _report(out)
    dropped = {row["file"]: row for row in report["issues"]["image_unreadable"]}
    assert set(dropped) == {"cut.jpg", "junk.png"}
    assert all(row["dropped"] == "image" and row["boxes"] == 2 for row in dropped.values())
    expected = {"images_found": 3, "images_written": 1, "boxes_found": 6, "boxes_dropped": 4}
    assert expected.items() <= report["totals"].items()
    assert report["accounted"]


# --- classes -------------------------------------------------------------------------------------


def _labelled(data: Path, names: dict[str, list[str]]) -> None:
    data.mkdir(exist_ok=True)
    for stem, labels in names.items():
        _scene((60, 60), (5, 5, 25, 25)).save(data / f"{stem}.jpg")
        _voc(data / f"{stem}.xml", (60, 60), [Box(n, 5 + i, 5, 25 + i, 25) for i, n in enumerate(labels)])


def test_class_case_and_spaces_are_normalised_with_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _labelled(data, {"a": ["Mona Lisa"], "b": ["mona lisa "], "c": ["Mona Lisa", " MONA LISA"], "d": ["Fool"]})
    out = tmp_path / "out"
    prepare_dataset(data, out)
    assert (out / "label_map.pbtxt").read_text().count("item") == 2
    labels = [t.decode() for ex in _records(out).values() for t in ex["image/object/class/text"]]
    assert sorted(labels) == ["Fool", "Mona Lisa", "Mona Lisa", "Mona Lisa", "Mona Lisa"]
    rows = _report(out)["issues"]["class_normalised"]
    assert sorted((r["file"], r["object"]) for r in rows) == [("b.xml", 0), ("c.xml", 1)]


def test_unknown_labels_are_an_error_listing_files_or_dropped_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _labelled(data, {"a": ["cat"], "b": ["dog", "cat"], "c": ["dgo"], "d": ["dgo"]})
    with pytest.raises(ValidationError) as error:
        validate_dataset(data, Options(classes=["cat", "dog"]))
    message = str(error.value)
    assert "'dgo' in c.xml, d.xml" in message and "unknown_classes: ignore" in message
    assert "'cat'" not in message.split("\n", 1)[1]
    out = tmp_path / "out"
    prepare_dataset(data, out, options=Options(classes=["cat", "dog"], unknown_classes="ignore"))
    report = _report(out)
    assert [(r["file"], r["object"]) for r in report["issues"]["class_unknown"]] == [("c.xml", 0), ("d.xml", 0)]
    assert report["totals"]["boxes_written"] == 3 and report["accounted"]


# --- negatives and strict mode ---------------------------------------------------------------------


def test_images_without_xml_are_negatives_unless_dropped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _labelled(data, {"a": ["cat"]})
    _scene((60, 60), (0, 0, 1, 1)).save(data / "empty_wall.jpg")
    out = tmp_path / "keep"
    prepare_dataset(data, out)
    records = _records(out)
    assert records["empty_wall.jpg"]["image/object/class/label"].size == 0
    assert _report(out)["totals"]["negatives"] == 1
    out = tmp_path / "drop"
    prepare_dataset(data, out, options=Options(negatives="drop"))
    assert list(_records(out)) == ["a.jpg"]
    assert _report(out)["issues"]["negative_dropped"][0]["file"] == "empty_wall.jpg"


def test_strict_turns_a_repair_into_a_failure(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _labelled(data, {"a": ["cat"]})
    validate_dataset(data, Options(strict=True))  # clean data passes
    _voc(data / "a.xml", (60, 60), [Box("cat", 50, 50, 80, 80)])
    with pytest.raises(ValidationError, match=r"a\.xml object 0: box \(50, 50, 80, 80\) clipped"):
        validate_dataset(data, Options(strict=True))
