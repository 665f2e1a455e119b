"""Validate a LabelImg dataset before anything is resized: pair, parse, repair, report.

Real labelled data breaks the tutorial's scripts in predictable ways: XML that
points at another machine, boxes outside the image or with swapped corners,
class names typed three ways, phone photos whose EXIF orientation turns the
pixels but not the boxes, grey-scale or CMYK JPEGs, truncated downloads. Each
problem is either repaired (and reported, with the file and object index) or
is an error that names the file and says what to do. Every image and box a
user labelled ends up in the TFRecords or in the report with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from artdet.data.classes import ClassResolver, discover_classes, read_box_names
from artdet.data.dataset import DatasetError, find_pairs
from artdet.data.voc import AnnotationError, Box, read_voc
from artdet.defaults import default

log = logging.getLogger(__name__)

EXIF_ORIENTATION = 0x0112
# PIL transposition that shows a stored image the way its EXIF orientation asks.
ORIENT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Every kind of finding: its severity and what it means. "warning" fails a strict run.
ISSUE_KINDS = {
    "box_swapped": ("warning", "box corners were in the wrong order; swapped"),
    "box_clipped": ("warning", "box reached outside the image; clipped to it"),
    "box_empty": ("warning", "box has no area inside the image; dropped"),
    "class_normalised": ("warning", "class name differed in case or spaces; normalised"),
    "class_unknown": ("warning", "class is not in the label map (unknown_classes: ignore); box dropped"),
    "image_unreadable": ("warning", "image cannot be decoded (corrupt or truncated); dropped with its boxes"),
    "size_mismatch": ("warning", "XML <size> differs from the image; boxes rescaled to the image"),
    "exif_ambiguous": ("warning", "EXIF-rotated image whose XML does not say which way it was labelled"),
    "negative_dropped": ("warning", "image has no XML and negatives: drop; dropped"),
    "near_duplicate_split": ("warning", "near-duplicate images ended up on different sides of the split"),
    "class_without_test": ("warning", "class has no box in the test split, so it cannot be evaluated"),
    "class_without_val": (
        "warning",
        "class has no box in the val split, so validation during training cannot score it",
    ),
    "empty_split": ("warning", "one side of the split has no image"),
    "pin_unmatched": ("warning", "pins file names an image that is not in the dataset"),
    "prelabel_unreviewed": (
        "info",
        "XML written by `artdet prelabel` and not saved or verified in LabelImg since (prelabels: review); "
        "left out with its image",
    ),
    "prelabel_accepted": ("info", "XML written by `artdet prelabel`, not reviewed, used (prelabels: accept)"),
    "size_missing": ("info", "XML has no <size>; read from the image"),
    "exif_oriented": ("info", "EXIF orientation applied to the pixels and the boxes"),
    "image_converted": ("info", "image mode converted to 8-bit RGB"),
    "image_reencoded": ("info", "image format is not JPEG/PNG; re-encoded as JPEG"),
    "negative_kept": ("info", "image has no XML; kept as a negative (no objects)"),
}


class ValidationError(DatasetError):
    """The dataset cannot be used as it is; the message names the files and the fix."""


@dataclass
class Issue:
    """One finding about one file (and object index, for a box)."""

    kind: str
    file: str
    message: str
    object: int | None = None
    dropped: str | None = None  # "image" or "box" when the item does not reach the records
    boxes: int = 0  # boxes dropped with a dropped image

    @property
    def severity(self) -> str:
        return ISSUE_KINDS[self.kind][0]


@dataclass
class ValidatedImage:
    """An image that passed validation, with boxes in its displayed (EXIF-oriented) pixels."""

    source: str
    annotation: str | None
    width: int
    height: int
    orientation: int
    mode: str
    format: str
    source_sha1: str
    dhash: str
    objects: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class BoxFrame:
    """The pixels one image's XML boxes were drawn on, and how to bring them to the displayed image.

    ``name`` is ``"stored"`` (the file's pixels, as LabelImg shows them) or ``"oriented"`` (with
    EXIF orientation applied); ``size`` is that frame's (width, height); ``scale`` takes the XML's
    coordinates to it (not 1 when ``<size>`` differs from the image); ``orientation`` and
    ``stored`` (the file's size) turn a stored-pixel box upright.
    """

    name: str
    size: tuple[int, int]
    scale: tuple[float, float]
    orientation: int
    stored: tuple[int, int]

    @property
    def turns(self) -> bool:
        """Whether boxes must be turned by the EXIF orientation (drawn on stored pixels of a rotated photo)."""
        return self.name == "stored" and self.orientation != 1


@dataclass
class Options:
    """How to treat what the data does not say by itself (config.yaml's data settings)."""

    classes: list[str] | None = None  # None: discover from the files being validated
    unknown_classes: str = default("unknown_classes")  # "error" or "ignore"
    negatives: str = default("negatives")  # "keep" or "drop"
    exif_boxes: str = default("exif_boxes")  # "auto", "stored" (LabelImg) or "oriented" (tools that apply EXIF)
    strict: bool = default("strict")
    prelabels: str = default("prelabels")  # "review" (unreviewed machine labels left out) or "accept"


@dataclass
class DatasetValidation:
    """What one validation run found: the usable images, the issues and the class list."""

    classes: list[str]
    images: list[ValidatedImage]
    issues: list[Issue]
    images_found: int
    boxes_found: int

    def to_json(self) -> dict:
        return {
            "classes": self.classes,
            "images_found": self.images_found,
            "boxes_found": self.boxes_found,
            "images": [asdict(i) for i in self.images],
            "issues": [asdict(i) for i in self.issues],
        }

    @classmethod
    def from_json(cls, data: dict) -> DatasetValidation:
        return cls(
            classes=data["classes"],
            images=[ValidatedImage(**i) for i in data["images"]],
            issues=[Issue(**i) for i in data["issues"]],
            images_found=data["images_found"],
            boxes_found=data["boxes_found"],
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> DatasetValidation:
        return cls.from_json(json.loads(Path(path).read_text()))


def dhash(image: Image.Image) -> str:
    """64-bit difference hash (horizontal gradients of a 9x8 grey thumbnail) as 16 hex digits."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = list(grey.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col + 1] > pixels[row * 9 + col])
    return f"{bits:016x}"


def orient_point(x: float, y: float, orientation: int, width: int, height: int) -> tuple[float, float]:
    """Where a point of the stored pixels (``width`` x ``height``) lands once EXIF orientation is applied."""
    return {
        1: (x, y),
        2: (width - x, y),
        3: (width - x, height - y),
        4: (x, height - y),
        5: (y, x),
        6: (height - y, x),
        7: (height - y, width - x),
        8: (y, width - x),
    }[orientation]


def orient_box(box: tuple[float, float, float, float], orientation: int, width: int, height: int) -> tuple:
    """A stored-pixel box (xmin, ymin, xmax, ymax) in the oriented image's pixels."""
    (ax, ay), (bx, by) = (
        orient_point(box[0], box[1], orientation, width, height),
        orient_point(box[2], box[3], orientation, width, height),
    )
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


# The inverse of each EXIF orientation (6 and 8 turn opposite ways; the others undo themselves).
_INVERSE_ORIENTATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


def stored_box(box: tuple, orientation: int, width: int, height: int) -> tuple:
    """A box in the upright (EXIF-oriented) pixels of a ``width`` x ``height`` upright image, in stored pixels.

    The inverse of :func:`orient_box`: LabelImg draws on the stored pixels, so boxes written
    for it (pre-labels, the review's suggestions) go back through this.
    """
    return orient_box(box, _INVERSE_ORIENTATION.get(orientation, 1), width, height)


def _decode(path: Path) -> tuple[bytes, Image.Image, tuple[int, int]]:
    """The file's bytes, a fully decoded (JPEG: reduced-scale) image and its stored size.

    Raises if the image cannot be decoded to the end.
    """
    data = path.read_bytes()
    image = Image.open(io.BytesIO(data))
    size = image.size
    if image.format == "JPEG":
        image.draft(image.mode, (72, 64))  # still decodes every scan, so truncation shows
    image.load()
    return data, image, size


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except (TypeError, ValueError):
        return 1
    return value if value in range(1, 9) else 1


class _DatasetChecker:
    """Checks one image/XML pair at a time and collects the issues of the whole run."""

    def __init__(self, root: Path, options: Options):
        self.root = root
        self.options = options
        self.issues: list[Issue] = []

    def note(
        self, kind: str, file: str, message: str, obj: int | None = None, dropped: str | None = None, boxes: int = 0
    ) -> None:
        issue = Issue(kind, file, message, obj, dropped, boxes)
        self.issues.append(issue)
        level = logging.WARNING if issue.severity == "warning" else logging.INFO
        where = f"{file}" + (f" object {obj}" if obj is not None else "")
        log.log(level, "%s: %s (%s)", where, message, kind)

    def _frame(self, rel: str, xml_size, stored, oriented, orientation) -> tuple[str, tuple[int, int] | None]:
        """Which pixels the XML's boxes refer to ("stored" or "oriented") and the size to rescale from."""
        option = self.options.exif_boxes
        if xml_size is None:
            if orientation != 1 and option == "auto":
                self.note(
                    "exif_ambiguous",
                    rel,
                    f"EXIF orientation {orientation} and no <size> in the XML; "
                    "assumed the boxes were drawn on the stored pixels, as LabelImg does "
                    "(set exif_boxes: stored or oriented to decide)",
                )
            return ("oriented" if option == "oriented" else "stored"), None
        if orientation == 1:
            return "stored", (None if xml_size == stored else xml_size)
        if option in {"stored", "oriented"}:
            frame = option
        elif stored != oriented and xml_size == stored:
            frame = "stored"
        elif stored != oriented and xml_size == oriented:
            frame = "oriented"
        elif xml_size == stored:  # a flip, a 180-degree turn or a square image: sizes cannot tell
            self.note(
                "exif_ambiguous",
                rel,
                f"EXIF orientation {orientation} cannot be told from the XML "
                "<size>; assumed the boxes were drawn on the stored pixels, as LabelImg does "
                "(set exif_boxes: stored or oriented to decide)",
            )
            frame = "stored"
        else:
            aspect = xml_size[0] / max(xml_size[1], 1)
            frame = (
                "stored"
                if abs(aspect - stored[0] / stored[1]) <= abs(aspect - oriented[0] / oriented[1])
                else "oriented"
            )
        size = stored if frame == "stored" else oriented
        return frame, (None if xml_size == size else xml_size)

    def _box_frame(
        self,
        rel: str,
        xml_rel: str | None,
        xml_size: tuple[int, int] | None,
        stored: tuple[int, int],
        oriented: tuple[int, int],
        orientation: int,
    ) -> BoxFrame:
        """The frame of an image's boxes (:meth:`_frame`), noting a rescale and an EXIF turn."""
        name, rescale_from = self._frame(rel, xml_size, stored, oriented, orientation)
        size = stored if name == "stored" else oriented
        if rescale_from is not None:
            self.note(
                "size_mismatch",
                xml_rel,
                f"<size> says {rescale_from[0]}x{rescale_from[1]} but the "
                f"image is {size[0]}x{size[1]}; boxes rescaled (was the image resized "
                "after labelling?)",
            )
        if name == "stored" and orientation != 1:
            self.note("exif_oriented", rel, f"EXIF orientation {orientation}: pixels and boxes turned upright")
        sx = size[0] / rescale_from[0] if rescale_from else 1.0
        sy = size[1] / rescale_from[1] if rescale_from else 1.0
        return BoxFrame(name, size, (sx, sy), orientation, stored)

    def image(self, image_path: Path, xml_path: Path | None, resolve) -> ValidatedImage | None:
        rel = image_path.relative_to(self.root).as_posix()
        xml_rel = xml_path.relative_to(self.root).as_posix() if xml_path else None
        annotation = read_voc(xml_path) if xml_path else None
        n_boxes = len(annotation.boxes) if annotation else 0
        if annotation is not None and annotation.unreviewed_prelabel:
            if self.options.prelabels == "review":
                self.note(
                    "prelabel_unreviewed",
                    xml_rel,
                    f"machine labels not reviewed yet; left out with its {n_boxes} box(es): open it in LabelImg, "
                    "correct and save it (or verify it), or set prelabels: accept",
                    dropped="image",
                    boxes=n_boxes,
                )
                return None
            self.note("prelabel_accepted", xml_rel, f"machine labels used unreviewed ({n_boxes} box(es))")
        if annotation is None and self.options.negatives == "drop":
            self.note("negative_dropped", rel, "no XML beside this image; dropped (negatives: drop)", dropped="image")
            return None
        try:
            data, probe, stored = _decode(image_path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            self.note(
                "image_unreadable",
                rel,
                f"cannot decode the image ({exc}); {n_boxes} box(es) dropped with it: replace the file",
                dropped="image",
                boxes=n_boxes,
            )
            return None
        orientation = _orientation(probe)
        transpose = ORIENT_TRANSPOSE.get(orientation)
        oriented = (stored[1], stored[0]) if orientation >= 5 else stored
        thumb = probe.transpose(transpose) if transpose is not None else probe
        if probe.mode not in {"RGB"}:
            self.note("image_converted", rel, f"mode {probe.mode} converted to 8-bit RGB")
        if probe.format not in {"JPEG", "PNG"}:
            self.note("image_reencoded", rel, f"{probe.format} image re-encoded as JPEG")
        if annotation is None:
            self.note("negative_kept", rel, "no XML beside this image; kept as a negative")
        objects: list[dict] = []
        if annotation is not None:
            xml_size = (annotation.width, annotation.height) if annotation.width and annotation.height else None
            if xml_size is None:
                self.note("size_missing", xml_rel, f"no <size>; using the image's {stored[0]}x{stored[1]}")
            frame = self._box_frame(rel, xml_rel, xml_size, stored, oriented, orientation)
            for index, box in enumerate(annotation.boxes):
                obj = self.box(xml_rel, index, box, resolve, frame)
                if obj is not None:
                    objects.append(obj)
        return ValidatedImage(
            source=rel,
            annotation=xml_rel,
            width=oriented[0],
            height=oriented[1],
            orientation=orientation,
            mode=probe.mode,
            format=probe.format or "",
            source_sha1=hashlib.sha1(data).hexdigest(),
            dhash=dhash(thumb),
            objects=objects,
        )

    def box(
        self, xml_rel: str, index: int, box: Box, resolve: Callable[[str], str | None], frame: BoxFrame
    ) -> dict | None:
        """One box in the displayed image's pixels, repaired (ordered, clipped) or dropped, with the issue noted."""
        scale = frame.scale
        name = resolve(box.name)
        if name is None:
            self.note(
                "class_unknown",
                xml_rel,
                f"class {box.name!r} is not in the label map; box dropped",
                index,
                dropped="box",
            )
            return None
        if name != box.name:
            self.note("class_normalised", xml_rel, f"class {box.name!r} read as {name!r}", index)
        x0, y0, x1, y1 = box.xmin * scale[0], box.ymin * scale[1], box.xmax * scale[0], box.ymax * scale[1]
        if x0 > x1 or y0 > y1:
            self.note(
                "box_swapped",
                xml_rel,
                f"corners ({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, {box.ymax:g}) swapped into order",
                index,
            )
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
        w, h = frame.size
        cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
        if cx1 - cx0 < 1 or cy1 - cy0 < 1:
            self.note(
                "box_empty",
                xml_rel,
                f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area inside the {w}x{h} image; dropped",
                index,
                dropped="box",
            )
            return None
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            self.note(
                "box_clipped", xml_rel, f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) clipped to the {w}x{h} image", index
            )
        if frame.turns:
            cx0, cy0, cx1, cy1 = orient_box((cx0, cy0, cx1, cy1), frame.orientation, *frame.stored)
        return {
            "name": name,
            "xmin": cx0,
            "ymin": cy0,
            "xmax": cx1,
            "ymax": cy1,
            "difficult": box.difficult,
            "truncated": box.truncated,
        }


def _check_classes(box_names: dict[str, list[str]], options: Options) -> list[str]:
    """The label-map classes; raise naming every unknown label and the files using it.

    ``box_names`` maps each XML file (relative path) to the names of its boxes.
    """
    found: dict[str, list[str]] = {}
    for xml, names in box_names.items():
        for name in names:
            found.setdefault(name, []).append(xml)
    if options.classes is None:
        classes = discover_classes(Counter({n: len(f) for n, f in found.items()}))
        return classes
    resolve = ClassResolver(options.classes)
    unknown = {name: files for name, files in found.items() if resolve(name) is None}
    if unknown and options.unknown_classes != "ignore":
        lines = [
            f"  {name!r} in {', '.join(sorted(set(files))[:10])}" + (" ..." if len(set(files)) > 10 else "")
            for name, files in sorted(unknown.items())
        ]
        raise ValidationError(
            f"labels not in config.yaml 'classes: {options.classes}':\n"
            + "\n".join(lines)
            + "\nAdd them to 'classes:', fix the XML files, or set 'unknown_classes: ignore' to drop those boxes."
        )
    return list(options.classes)


def validate_dataset(
    root: str | Path, options: Options | None = None, shard: int | None = None, shards: int = 1
) -> DatasetValidation:
    """Validate every image/XML pair under ``root`` (or one shard of them).

    Raises :class:`ValidationError` for what cannot be repaired (an XML with no
    image or unparsable, unknown labels, or any warning when ``strict``).
    """
    root = Path(root)
    options = options or Options()
    pairs = find_pairs(root, shard=shard, shards=shards)
    box_names = {xml.relative_to(root).as_posix(): read_box_names(xml) for _, xml in pairs if xml is not None}
    classes = _check_classes(box_names, options)
    resolve = ClassResolver(classes) if classes else (lambda name: None)
    checker = _DatasetChecker(root, options)
    images = []
    for image_path, xml_path in pairs:
        try:
            item = checker.image(image_path, xml_path, resolve)
        except AnnotationError as exc:
            raise ValidationError(f"{exc}; fix or delete the XML file") from exc
        if item is not None:
            images.append(item)
    boxes_found = sum(len(names) for names in box_names.values())
    result = DatasetValidation(classes, images, checker.issues, len(pairs), boxes_found)
    if options.strict:
        warnings = [i for i in result.issues if i.severity == "warning"]
        if warnings:
            listed = "\n".join(
                f"  {i.file}" + (f" object {i.object}" if i.object is not None else "") + f": {i.message}"
                for i in warnings[:30]
            )
            raise ValidationError(
                f"strict: {len(warnings)} warning(s) in the data:\n{listed}\n"
                "Fix the files, or set 'strict: false' to accept the repairs."
            )
    return result
