"""The classifier's data: class folders, or crops cut from a LabelImg detection dataset.

Two layouts are read, and which one is decided by the folder, not by a flag:

* ``<dataset>/<class>/*.jpg`` (Keras' ``image_dataset_from_directory``, torchvision's
  ``ImageFolder``): the first folder level is the class, deeper folders are searched too;
* any ``.xml`` under the folder makes it a LabelImg dataset, and every box becomes one
  labelled crop (BCCD's cells, say).

Every image is decoded before it is used; one that cannot be (truncated, not an image)
is dropped and counted in the shard's report with the reason, and the run goes on.
The split is by content hash, as for the detector, so a re-saved copy stays on its side
and adding images never moves existing ones; crops follow their photo, so two crops of
one photo never sit on both sides.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from artdet.data.dataset import IMAGE_SUFFIXES, DatasetError, find_pairs, shard_of
from artdet.data.split import hash_fraction
from artdet.data.voc import AnnotationError, read_voc


@dataclass
class Item:
    """One labelled picture: a whole image, or a box of one (``box`` in pixels, else None)."""

    id: str
    image: str
    label: str
    side: str
    box: tuple[int, int, int, int] | None = None


@dataclass
class ShardScan:
    """What one shard holds: the usable items, and every file or box left out, with why."""

    items: list[Item] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    layout: str = "folders"

    def report(self) -> dict:
        return {"layout": self.layout, "items": [asdict(i) for i in self.items], "dropped": self.dropped}


def layout_of(root: str | Path) -> str:
    """``crops`` when the folder holds any LabelImg XML, else ``folders`` (class folders)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"classify dataset folder {root} does not exist: set 'classify_dataset:' in config.yaml, pass "
            f"--config classify_dataset=PATH, or generate the demo with `artdet demo-data --classify {root}`"
        )
    return "crops" if any(p.suffix.lower() == ".xml" for p in root.rglob("*") if p.is_file()) else "folders"


def load_rgb(path: str | Path, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB pixels of an image (EXIF rotation applied), cropped to ``box`` if given."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        if box is not None:
            image = image.crop(box)
        return np.asarray(image)


def padded_box(
    box: tuple[float, float, float, float], width: int, height: int, padding: float
) -> tuple[int, int, int, int]:
    """A box (xmin, ymin, xmax, ymax in pixels) grown by ``padding`` of its size on each side, inside the image.

    Training crops and the crops named at detection time are cut the same way, so the classifier
    sees the same amount of surroundings in both. The crop is at least one pixel of the image even
    for a detection of no size or on (or past) its border, which a detector can return.
    """
    x0, y0, x1, y1 = box
    pad_x, pad_y = (x1 - x0) * padding, (y1 - y0) * padding
    left = min(max(0, int(x0 - pad_x)), width - 1)
    top = min(max(0, int(y0 - pad_y)), height - 1)
    return (
        left,
        top,
        max(left + 1, min(width, int(x1 + pad_x) + 1)),
        max(top + 1, min(height, int(y1 + pad_y) + 1)),
    )


def _side(data: bytes, seed: int, test_fraction: float) -> str:
    return "test" if hash_fraction(hashlib.sha1(data).hexdigest(), seed) < test_fraction else "train"


def _readable(path: Path) -> tuple[bytes, tuple[int, int]] | str:
    """The bytes and upright size of a decodable image, or why it cannot be used."""
    try:
        data = path.read_bytes()
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return data, image.size
    except Exception as exc:  # PIL raises many kinds for a corrupt file; every one is a drop, not a crash
        return f"not a readable image ({type(exc).__name__}: {exc}); replace or delete the file"


def scan_shard(
    root: str | Path,
    shard: int = 0,
    shards: int = 1,
    test_fraction: float = 0.25,
    seed: int = 0,
    crop_padding: float = 0.1,
    min_side: int = 8,
) -> ShardScan:
    """The items of one shard of ``root`` (files whose stem hashes to ``shard``), split and checked."""
    root = Path(root)
    layout = layout_of(root)
    scan = ShardScan(layout=layout)
    if layout == "folders":
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if shard_of(path.stem, shards) != shard:
                continue
            rel = path.relative_to(root)
            if len(rel.parts) < 2:
                scan.dropped.append(
                    {"file": str(rel), "reason": "not in a class folder; move it into <dataset>/<class>/"}
                )
                continue
            checked = _readable(path)
            if isinstance(checked, str):
                scan.dropped.append({"file": str(rel), "reason": checked})
                continue
            data, size = checked
            if min(size) < min_side:
                scan.dropped.append({"file": str(rel), "reason": f"smaller than {min_side} pixels a side"})
                continue
            scan.items.append(Item(str(rel), str(rel), rel.parts[0], _side(data, seed, test_fraction)))
        return scan
    for image_path, xml in find_pairs(root, shard, shards):
        rel = image_path.relative_to(root)
        if xml is None:
            scan.dropped.append({"file": str(rel), "reason": "no LabelImg XML beside it, so no box to crop"})
            continue
        checked = _readable(image_path)
        if isinstance(checked, str):
            scan.dropped.append({"file": str(rel), "reason": checked})
            continue
        data, (width, height) = checked
        try:
            annotation = read_voc(xml)
        except AnnotationError as exc:
            scan.dropped.append({"file": str(xml.relative_to(root)), "reason": str(exc)})
            continue
        side = _side(data, seed, test_fraction)
        for index, b in enumerate(annotation.boxes):
            box = padded_box((b.xmin, b.ymin, b.xmax, b.ymax), width, height, crop_padding)
            if min(box[2] - box[0], box[3] - box[1]) < min_side:
                scan.dropped.append(
                    {"file": f"{rel}#{index}", "reason": f"box smaller than {min_side} pixels a side inside the image"}
                )
                continue
            scan.items.append(Item(f"{rel}#{index}", str(rel), b.name.strip(), side, box))
    return scan
