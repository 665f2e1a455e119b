"""`artdet prelabel`: machine labels for new photos, in LabelImg's layout, never trained on unreviewed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artdet.data.validate import EXIF_ORIENTATION, Options, orient_box, stored_box, validate_dataset
from artdet.data.voc import read_voc, write_voc
from artdet.deploy.prelabel import one_class_per_object, prelabel_folder, uncertainty
from artdet.deploy.runtime import Detection


class Painted:
    """Finds the one bright rectangle a test photo holds: a stand-in for a model, for the file handling alone.

    It is sure of a white rectangle (0.95) and unsure of a grey one (0.55), and also names each
    rectangle a second time with another class, as a TFLite file does.
    """

    def __call__(self, image: np.ndarray, min_score: float = 0.0) -> list[Detection]:
        ys, xs = np.nonzero(image[..., 0] > 150)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        score = 0.95 if image[ys, xs, 0].mean() > 240 else 0.55
        found = [Detection(1, "portrait", score, box), Detection(2, "nocturne", 0.2, box)]
        return [d for d in found if d.score >= min_score]


def _photo(path: Path, orientation: int = 1, grey: int = 255) -> tuple[int, int, int, int]:
    """A 160x100 upright photo with a rectangle at (30, 20)-(90, 70), stored with ``orientation``."""
    upright = np.zeros((100, 160, 3), np.uint8)
    upright[20:70, 30:90] = grey
    image = Image.fromarray(upright)
    # Store the pixels so that applying the EXIF orientation shows the upright photo.
    undo = {1: None, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    if undo[orientation] is not None:
        image = image.transpose(undo[orientation])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    image.save(path, exif=exif, quality=95)
    return (30, 20, 90, 70)


def test_boxes_are_written_in_stored_pixels_and_validate_turns_them_back(tmp_path: Path) -> None:
    for orientation in (1, 6, 8, 3):
        folder = tmp_path / f"o{orientation}"
        folder.mkdir()
        upright_box = _photo(folder / "photo.jpg", orientation)
        written = prelabel_folder(Painted(), folder, min_score=0.5)
        assert [p.xml.name for p in written] == ["photo.xml"]
        annotation = read_voc(folder / "photo.xml")
        with Image.open(folder / "photo.jpg") as stored:
            assert (annotation.width, annotation.height) == stored.size  # LabelImg's frame: the stored pixels
        assert annotation.unreviewed_prelabel and len(annotation.boxes) == 1, "one class per object"
        validated = validate_dataset(folder, Options(prelabels="accept"))
        (obj,) = validated.images[0].objects
        got = (obj["xmin"], obj["ymin"], obj["xmax"], obj["ymax"])
        assert np.allclose(got, upright_box, atol=1.0), (orientation, got)
        assert {i.kind for i in validated.issues} >= {"prelabel_accepted"}


def test_an_existing_xml_is_never_overwritten_and_the_summary_puts_unsure_photos_first(tmp_path: Path) -> None:
    _photo(tmp_path / "labelled.jpg")
    _photo(tmp_path / "a_sure.jpg")
    _photo(tmp_path / "b_unsure.jpg", grey=200)
    (tmp_path / "labelled.xml").write_text(
        "<annotation><size><width>160</width><height>100</height></size></annotation>"
    )
    before = (tmp_path / "labelled.xml").read_bytes()
    written = prelabel_folder(Painted(), tmp_path, min_score=0.5)
    assert [p.image.name for p in written] == ["b_unsure.jpg", "a_sure.jpg"], "the most uncertain photo first"
    assert [name for name, _, _ in written[0].boxes] == ["portrait"], "one class per object"
    assert (tmp_path / "labelled.xml").read_bytes() == before
    assert prelabel_folder(Painted(), tmp_path, min_score=0.5) == [], "a second run writes nothing"
    assert uncertainty([0.5, 0.99]) == 1.0 and uncertainty([0.98]) < 0.05 and uncertainty([]) == 0.0
    two = [
        Detection(1, "a", 0.4, (0, 0, 10, 10)),
        Detection(2, "b", 0.7, (0, 0, 10, 11)),
        Detection(1, "a", 0.3, (50, 50, 60, 60)),
    ]
    assert [(d.class_name, d.score) for d in one_class_per_object(two)] == [("b", 0.7), ("a", 0.3)]
    assert stored_box((10, 20, 30, 40), 1, 160, 100) == (10, 20, 30, 40)
    # Turned 90 degrees and back: the stored box again.
    assert stored_box(orient_box((10, 20, 30, 40), 6, 160, 100), 6, 100, 160) == (10, 20, 30, 40)


def test_unreviewed_prelabels_stay_out_under_review_and_a_save_or_verify_in_labelimg_counts(tmp_path: Path) -> None:
    _photo(tmp_path / "a.jpg")
    _photo(tmp_path / "b.jpg")
    _photo(tmp_path / "c.jpg")
    prelabel_folder(Painted(), tmp_path, min_score=0.5)
    review = validate_dataset(tmp_path, Options(prelabels="review"))
    assert review.images == []
    left_out = [i for i in review.issues if i.kind == "prelabel_unreviewed"]
    assert len(left_out) == 3 and all(i.dropped == "image" and "LabelImg" in i.message for i in left_out)
    assert len(validate_dataset(tmp_path, Options(prelabels="accept")).images) == 3

    saved = read_voc(tmp_path / "b.xml")  # LabelImg rewrites the whole file on save: <source> is "Unknown" again
    saved.database = "Unknown"
    write_voc(saved, tmp_path / "b.xml")
    verified = read_voc(tmp_path / "c.xml")  # "Verify Image" marks the file verified="yes"
    verified.verified = True
    write_voc(verified, tmp_path / "c.xml")
    assert 'verified="yes"' in (tmp_path / "c.xml").read_text()
    review = validate_dataset(tmp_path, Options(prelabels="review"))
    assert sorted(i.source for i in review.images) == ["b.jpg", "c.jpg"]


@pytest.mark.slow
def test_prelabel_command_with_a_trained_model(trained_model: Path, demo_dir: Path, tmp_path: Path, venv_env: dict):
    """The real model pre-labels held-out demo photos; validate reads back the boxes the model found."""
    from artdet.deploy.runtime import Detector

    photos = tmp_path / "new"
    photos.mkdir()
    for jpg in sorted(demo_dir.glob("*.jpg"))[:3]:
        shutil.copy(jpg, photos / jpg.name)
    run = subprocess.run(
        [sys.executable, "-m", "artdet", "prelabel", str(trained_model), str(photos), "--min-score", "0.3"],
        env=venv_env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote 3 LabelImg files" in run.stdout and "most uncertain first" in run.stdout
    detector = Detector(trained_model)
    validated = validate_dataset(photos, Options(prelabels="accept"))
    assert len(validated.images) == 3 and sum(len(i.objects) for i in validated.images) >= 3
    for image in validated.images:
        pixels = np.asarray(Image.open(photos / image.source).convert("RGB"))
        expected = [d for d in one_class_per_object(detector(pixels, min_score=0.1)) if d.score >= 0.3]
        assert len(image.objects) == len(expected)
        for d in expected:
            assert any(
                o["name"] == d.class_name and np.allclose((o["xmin"], o["ymin"], o["xmax"], o["ymax"]), d.box, atol=1.0)
                for o in image.objects
            ), (image.source, d)
