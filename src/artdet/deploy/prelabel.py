"""``artdet prelabel``: a trained model draws the first boxes of new photos, a person corrects them in LabelImg.

Most of a user's time goes into drawing boxes. A model trained on the photos labelled so far
already finds most objects in the next ones; correcting its boxes is faster than drawing them.
Each photo without an XML file gets one, in LabelImg's layout: pixel corners of the **stored**
image (LabelImg draws on the stored pixels and ignores the EXIF orientation, which is what
``validate`` assumes when ``<size>`` matches the stored size), class names from the model's
label map, one class per box. An existing XML file is never touched.

The file says where it came from (``<source><database>artdet prelabel</database>``): LabelImg
rewrites the whole file when a person saves it, and marks it ``verified="yes"`` when they verify
it, so a file still carrying the mark has not been reviewed, and ``prelabels: review`` keeps it
out of training (:class:`artdet.data.voc.Annotation`).

The summary lists the photos most worth correcting first: those whose boxes the model was
least sure of (a score near 0.5, or a box just below the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from artdet.data.dataset import find_pairs
from artdet.data.geometry import iou_matrix
from artdet.data.validate import EXIF_ORIENTATION, stored_box
from artdet.data.voc import PRELABEL_SOURCE, Annotation, Box, write_voc

# Boxes of one photo that overlap this much (IoU) are one object: its best class is kept.
SAME_OBJECT_IOU = 0.7
# Detections from this score on count towards a photo's uncertainty, even below --min-score.
UNSURE_FLOOR = 0.1


@dataclass
class Prelabelled:
    """One photo `artdet prelabel` wrote an XML file for."""

    image: Path
    xml: Path
    boxes: list[tuple[str, float, tuple[float, float, float, float]]] = field(default_factory=list)
    uncertainty: float = 0.0


def one_class_per_object(detections: list, iou: float = SAME_OBJECT_IOU) -> list:
    """The detections with one class per object: the best-scoring of boxes that overlap by ``iou`` or more.

    A label file holds one name per object, while TFLite files and two-stage models return
    every likely class of a box, and per-class NMS can keep two classes on one object.
    """
    kept: list = []
    for d in sorted(detections, key=lambda d: -d.score):
        if not kept or iou_matrix([d.box], [k.box for k in kept]).max() < iou:
            kept.append(d)
    return kept


def uncertainty(scores: list[float]) -> float:
    """How unsure the model was about a photo: 1 for a box scored 0.5, 0 when every box is near 0 or 1."""
    return max((1 - abs(2 * s - 1) for s in scores if s >= UNSURE_FLOOR), default=0.0)


def prelabel_image(detector, image_path: Path, xml_path: Path, min_score: float) -> Prelabelled:
    """Detect on one photo (upright) and write its LabelImg XML in stored pixels."""
    with Image.open(image_path) as image:
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
        orientation = orientation if 1 <= orientation <= 8 else 1
        stored = image.size
        upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    found = one_class_per_object(detector(upright, min_score=min(min_score, UNSURE_FLOOR)))
    height, width = upright.shape[:2]
    kept = [d for d in found if d.score >= min_score]
    boxes = [(d.class_name, d.score, stored_box(d.box, orientation, width, height)) for d in kept]
    annotation = Annotation(
        filename=image_path.name,
        width=stored[0],
        height=stored[1],
        boxes=[Box(name, *box) for name, _, box in boxes],
        folder=image_path.parent.name,
        path=str(image_path.resolve()),
        database=PRELABEL_SOURCE,
    )
    write_voc(annotation, xml_path)
    return Prelabelled(image_path, xml_path, boxes, uncertainty([d.score for d in found]))


def prelabel_folder(detector, folder: str | Path, min_score: float) -> list[Prelabelled]:
    """An XML file beside every image of ``folder`` that has none; the most uncertain photos first."""
    written = []
    for image, xml in find_pairs(folder):
        if xml is not None:
            continue
        target = image.with_suffix(".xml")
        if target.exists():  # an XML of another image's stem: never overwritten
            continue
        written.append(prelabel_image(detector, image, target, min_score))
    return sorted(written, key=lambda p: (-p.uncertainty, str(p.image)))
