"""`artdet classify MODEL SOURCE`: answer for every picture of a file, folder or glob."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from artdet.classify.dataset import load_rgb
from artdet.classify.model import Classifier
from artdet.data.dataset import IMAGE_SUFFIXES
from artdet.deploy.detect import SourceError


def source_files(source: str) -> list[Path]:
    """The images of a file, a folder (recursively) or a glob; an error naming ``source`` if there are none."""
    path = Path(source)
    if path.is_file():
        return [path]
    paths = path.rglob("*") if path.is_dir() else (Path(p) for p in glob.glob(source, recursive=True))
    files = sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{source}: no images found (give an image, a folder or a glob)")
    return files


def classify_files(classifier: Classifier, source: str, top_k: int | None = None) -> Iterator[tuple[Path, dict]]:
    """(file, answer) per picture; an unreadable picture answers with an ``error`` instead of stopping."""
    for path in source_files(source):
        try:
            pixels = load_rgb(path)
        except Exception as exc:  # a corrupt file among many is reported and skipped
            yield path, {"error": f"not a readable image ({type(exc).__name__}: {exc})"}
            continue
        yield path, classifier(pixels, top_k).as_dict()
