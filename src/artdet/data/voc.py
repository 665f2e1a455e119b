"""Read and write Pascal VOC annotations exactly as LabelImg does.

The tutorial's ``xml_to_csv.py`` reads ``member[4][0]`` by position, so one
extra tag breaks it. Here every field is looked up by tag name and the
coordinates are read as floats, so files from other labelling tools load too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree


class AnnotationError(ValueError):
    """An annotation file that cannot be used; the message names the file."""


@dataclass
class Box:
    """One labelled object, in pixel coordinates of the stored image."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclass
class Annotation:
    """The contents of one LabelImg XML file."""

    filename: str
    width: int | None
    height: int | None
    depth: int = 3
    boxes: list[Box] = field(default_factory=list)
    folder: str = ""
    path: str = ""
    # <source><database>: LabelImg writes "Unknown"; `artdet prelabel` writes PRELABEL_SOURCE.
    database: str = "Unknown"
    # <annotation verified="yes">: LabelImg's "Verify Image" (space bar).
    verified: bool = False

    @property
    def unreviewed_prelabel(self) -> bool:
        """Written by `artdet prelabel` and not saved or verified in LabelImg since.

        LabelImg rewrites the whole file when a person saves it (its <source> says "Unknown"
        again) and sets ``verified="yes"`` when they verify it, so either shows a review.
        """
        return self.database == PRELABEL_SOURCE and not self.verified


# The <source><database> of a file `artdet prelabel` wrote: machine labels nobody has reviewed yet.
PRELABEL_SOURCE = "artdet prelabel"


def _text(node: etree._Element, tag: str, default: str | None = None) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _flag(node: etree._Element, tag: str) -> bool:
    value = _text(node, tag, "0") or "0"
    try:
        return float(value) != 0
    except ValueError:
        return value.lower() in {"true", "yes"}


def read_voc(path: str | Path) -> Annotation:
    """Parse a LabelImg XML file by tag name.

    Raises :class:`AnnotationError` naming the file and the object index when
    a field is missing or not a number.
    """
    path = Path(path)
    try:
        root = etree.parse(str(path)).getroot()
    except (etree.XMLSyntaxError, OSError) as exc:
        raise AnnotationError(f"{path}: not a readable XML file ({exc})") from exc
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: root element is <{root.tag}>, expected <annotation>")

    width = height = None
    depth = 3
    size = root.find("size")
    if size is not None:
        try:
            width = int(float(_text(size, "width", "0") or 0)) or None
            height = int(float(_text(size, "height", "0") or 0)) or None
            depth = int(float(_text(size, "depth", "3") or 3))
        except ValueError as exc:
            raise AnnotationError(f"{path}: <size> holds a value that is not a number") from exc

    boxes = []
    for index, obj in enumerate(root.iter("object")):
        name = _text(obj, "name")
        if not name:
            raise AnnotationError(f"{path}: object {index} has no <name>; label it or delete it")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError(f"{path}: object {index} ({name!r}) has no <bndbox>")
        try:
            coords = [float(_text(bnd, key) or "nan") for key in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError as exc:
            raise AnnotationError(f"{path}: object {index} ({name!r}) has a coordinate that is not a number") from exc
        if any(c != c for c in coords):
            raise AnnotationError(f"{path}: object {index} ({name!r}) lacks a bndbox coordinate")
        boxes.append(
            Box(
                name=name,
                xmin=coords[0],
                ymin=coords[1],
                xmax=coords[2],
                ymax=coords[3],
                difficult=_flag(obj, "difficult"),
                truncated=_flag(obj, "truncated"),
                pose=_text(obj, "pose", "Unspecified") or "Unspecified",
            )
        )
    return Annotation(
        filename=_text(root, "filename", path.stem) or path.stem,
        width=width,
        height=height,
        depth=depth,
        boxes=boxes,
        folder=_text(root, "folder", "") or "",
        path=_text(root, "path", "") or "",
        database=_text(root, "source/database", "Unknown") or "Unknown",
        verified=(root.get("verified") or "").lower() == "yes",
    )


def _sub(parent: etree._Element, tag: str, text: object) -> etree._Element:
    node = etree.SubElement(parent, tag)
    node.text = str(text)
    return node


def write_voc(annotation: Annotation, path: str | Path) -> None:
    """Write an annotation in LabelImg's layout (tab-indented, no XML declaration)."""
    root = etree.Element("annotation")
    if annotation.verified:
        root.set("verified", "yes")
    _sub(root, "folder", annotation.folder)
    _sub(root, "filename", annotation.filename)
    _sub(root, "path", annotation.path)
    source = etree.SubElement(root, "source")
    _sub(source, "database", annotation.database)
    size = etree.SubElement(root, "size")
    _sub(size, "width", annotation.width)
    _sub(size, "height", annotation.height)
    _sub(size, "depth", annotation.depth)
    _sub(root, "segmented", 0)
    for box in annotation.boxes:
        obj = etree.SubElement(root, "object")
        _sub(obj, "name", box.name)
        _sub(obj, "pose", box.pose)
        _sub(obj, "truncated", int(box.truncated))
        _sub(obj, "difficult", int(box.difficult))
        bnd = etree.SubElement(obj, "bndbox")
        for key in ("xmin", "ymin", "xmax", "ymax"):
            _sub(bnd, key, round(getattr(box, key)))
    etree.indent(root, space="\t")
    Path(path).write_bytes(etree.tostring(root, pretty_print=True))
