"""What a person sees: each box once, with its best class; the other classes as alternatives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from artdet.deploy.draw import class_colour, draw_detections
from artdet.deploy.runtime import Detection, one_per_box

BOX = (20.0, 30.0, 120.0, 110.0)
# The case users met: a TFLite file returns the box twice, and the weaker class came last.
TWICE = [Detection(3, "nocturne", 0.6746, BOX), Detection(4, "portrait", 0.4231, BOX)]


def test_one_box_once_with_its_best_class_and_the_other_as_an_alternative() -> None:
    other = Detection(1, "abstract", 0.9, (200.0, 10.0, 260.0, 70.0))
    shown = one_per_box([*reversed(TWICE), other])
    assert [(d.class_name, d.score) for d in shown] == [("abstract", 0.9), ("nocturne", 0.6746)]
    assert shown[1].alternatives == [("portrait", 0.4231)] and shown[0].alternatives == []
    assert one_per_box(shown) == shown, "grouping twice keeps the alternatives"
    # Overlapping but different boxes stay two detections.
    near = Detection(4, "portrait", 0.5, (21.0, 30.0, 120.0, 110.0))
    assert len(one_per_box([TWICE[0], near])) == 2


def test_the_box_is_drawn_once_labelled_with_the_higher_class() -> None:
    image = np.zeros((140, 300, 3), np.uint8)
    for order in (TWICE, list(reversed(TWICE))):
        drawn = draw_detections(image, order)
        label = drawn[16:30, 20:120].reshape(-1, 3)  # the label strip above the box
        colours = {tuple(c) for c in label.tolist()}
        assert class_colour(3) in colours and class_colour(4) not in colours, order
    with_second_line = draw_detections(image, TWICE, alternatives=True)
    assert (with_second_line != draw_detections(image, TWICE)).any()


def test_detections_file_lists_the_box_once_with_its_alternatives(tmp_path: Path) -> None:
    from artdet.deploy.detect import Frame, _Writer

    writer = _Writer(tmp_path / "detections.jsonl")
    for det in one_per_box(TWICE):
        writer.write(Frame("photo.jpg", 0, None), det)
    writer.close()
    (row,) = [json.loads(line) for line in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert row["class"] == "nocturne" and row["alternatives"] == [{"class": "portrait", "score": 0.4231}]
    csv_writer = _Writer(tmp_path / "detections.csv")
    csv_writer.write(Frame("photo.jpg", 0, None), one_per_box(TWICE)[0])
    csv_writer.close()
    assert "portrait:0.4231" in (tmp_path / "detections.csv").read_text()


def test_the_http_answer_lists_the_box_once_with_its_alternatives() -> None:
    from artdet.deploy.serve import DetectionOut, detection_json

    (answer,) = [detection_json(d) for d in one_per_box(TWICE)]
    assert answer["class"] == "nocturne" and answer["alternatives"] == [{"class": "portrait", "score": 0.4231}]
    assert DetectionOut.model_validate(answer).model_dump(by_alias=True)["alternatives"] == answer["alternatives"]
