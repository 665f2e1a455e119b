from pathlib import Path

import pytest

from artdet.data.voc import Annotation, AnnotationError, Box, read_voc, write_voc


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    original = Annotation(
        filename="a.jpg",
        width=640,
        height=480,
        boxes=[Box("mona lisa", 10, 20, 110, 220, difficult=True), Box("cat", 1, 2, 3, 4, truncated=True)],
        folder="imgs",
        path="/home/u/imgs/a.jpg",
    )
    write_voc(original, tmp_path / "a.xml")
    back = read_voc(tmp_path / "a.xml")
    assert back == original


def test_written_file_has_labelimg_layout(tmp_path: Path) -> None:
    write_voc(Annotation("a.jpg", 4, 3, boxes=[Box("x", 0, 0, 2, 2)]), tmp_path / "a.xml")
    text = (tmp_path / "a.xml").read_text()
    order = [
        "<folder>",
        "<filename>",
        "<path>",
        "<source>",
        "<database>",
        "<size>",
        "<segmented>",
        "<object>",
        "<name>",
        "<pose>",
        "<truncated>",
        "<difficult>",
        "<bndbox>",
        "<xmin>",
        "<ymax>",
    ]
    positions = [text.index(tag) for tag in order]
    assert positions == sorted(positions)
    assert text.startswith("<annotation>\n\t<folder>")


def test_reads_by_tag_name_with_extra_tags_and_float_coordinates(tmp_path: Path) -> None:
    (tmp_path / "x.xml").write_text(
        "<annotation><filename>elsewhere.png</filename>"
        "<object><occluded>1</occluded><attributes><a>1</a></attributes>"
        "<bndbox><ymax>40.7</ymax><xmin>10.5</xmin><ymin>20</ymin><xmax>30.2</xmax></bndbox>"
        "<name>figure</name><difficult>1</difficult></object></annotation>"
    )
    ann = read_voc(tmp_path / "x.xml")
    assert ann.width is None and ann.height is None
    assert ann.boxes == [Box("figure", 10.5, 20.0, 30.2, 40.7, difficult=True)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>",
            "object 0 has no <name>",
        ),
        ("<object><name>a</name></object>", "object 0 ('a') has no <bndbox>"),
        (
            "<object><name>a</name><bndbox><xmin>one</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>",
            "object 0 ('a') has a coordinate that is not a number",
        ),
        (
            "<object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object>",
            "object 0 ('a') lacks a bndbox coordinate",
        ),
    ],
)
def test_bad_objects_name_the_file_and_object(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(f"<annotation>{body}</annotation>")
    with pytest.raises(AnnotationError) as info:
        read_voc(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_broken_xml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text("<annotation><object>")
    with pytest.raises(AnnotationError, match=r"broken\.xml: not a readable XML file"):
        read_voc(path)
