"""Find the labelled images of a dataset folder and pair each image with its XML.

Images are paired with annotations by file stem and relative folder, never by
the XML's ``<filename>`` or ``<path>``, which point at the labeller's machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DatasetError(ValueError):
    """A dataset problem the user must fix; the message names the file."""


@dataclass
class Sample:
    """One image, its labelled objects and where it came from."""

    image: str
    annotation: str | None
    width: int
    height: int
    objects: list[dict] = field(default_factory=list)
    sha1: str = ""
    source: str = ""
    source_sha1: str = ""
    dhash: str = ""


def shard_of(stem: str, shards: int) -> int:
    """The shard (0..shards-1) of every file with this stem: an image and its XML share one.

    It depends on the name alone, so the workflow knows each shard's files
    before it reads them, and adding a file changes one shard only.
    """
    return int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % shards


def shard_name(index: int, shards: int) -> str:
    """``00003-of-00016``: the TF convention for the index and count of shards."""
    return f"{index:05d}-of-{shards:05d}"


def find_pairs(root: str | Path, shard: int | None = None, shards: int = 1) -> list[tuple[Path, Path | None]]:
    """Return (image, xml-or-None) pairs under ``root``, searched recursively, sorted.

    An XML file pairs with the image at the same relative path, else with the
    one image of the same stem anywhere under ``root`` (LabelImg users often
    keep ``images/`` and ``annotations/`` apart). An XML file that pairs with
    no image is an error naming the file. With ``shard``, only the files of
    that shard (see :func:`shard_of`) are paired.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set 'dataset:' in config.yaml")
    images: dict[Path, Path] = {}
    xmls: list[Path] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        if shard is not None and suffix in IMAGE_SUFFIXES | {".xml"} and shard_of(path.stem, shards) != shard:
            continue
        if suffix in IMAGE_SUFFIXES:
            key = path.relative_to(root).with_suffix("")
            if key in images:
                raise DatasetError(f"{path} and {images[key]} share a name; rename one of them")
            images[key] = path
        elif suffix == ".xml":
            xmls.append(path)
    by_stem: dict[str, list[Path]] = {}
    for key in images:
        by_stem.setdefault(key.name, []).append(key)
    paired: dict[Path, Path] = {}
    orphans = []
    for xml in xmls:
        key = xml.relative_to(root).with_suffix("")
        if key not in images:
            same_stem = by_stem.get(key.name, [])
            key = same_stem[0] if len(same_stem) == 1 else None
        if key is None or key in paired:
            orphans.append(str(xml))
        else:
            paired[key] = xml
    if orphans:
        raise DatasetError(
            "annotation without a matching image (add the image or delete the XML): " + ", ".join(orphans[:20])
        )
    return [(images[k], paired.get(k)) for k in sorted(images)]


def write_manifest(samples: list[Sample], path: str | Path) -> None:
    Path(path).write_text(json.dumps([asdict(s) for s in samples], indent=1) + "\n")


def read_manifest(path: str | Path) -> list[Sample]:
    return [Sample(**item) for item in json.loads(Path(path).read_text())]
