"""Generate ``label_map.pbtxt`` from the classes, never by hand.

Ids start at 1 (0 is the background in the TF Object Detection API and in
Model Garden). The order is the one given in config.yaml, or the sorted class
names found in the data, so the same data always gives the same ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def build_classes(configured: list[str] | None, found: Iterable[str]) -> list[str]:
    """The ordered class list: the configured one, else the sorted names found."""
    found = sorted(set(found))
    if configured:
        unknown = sorted(set(found) - set(configured))
        if unknown:
            raise ValueError(
                f"labels {unknown} are used in the data but not listed in config.yaml 'classes:'; "
                "add them there or fix the annotations"
            )
        return list(configured)
    if not found:
        raise ValueError("the dataset has no labelled object; label some images first")
    return found


def format_label_map(classes: list[str]) -> str:
    items = []
    for index, name in enumerate(classes, start=1):
        escaped = name.replace("\\", "\\\\").replace("'", "\\'")
        items.append(f"item {{\n  id: {index}\n  name: '{escaped}'\n}}\n")
    return "\n".join(items)


def write_label_map(classes: list[str], path: str | Path) -> None:
    Path(path).write_text(format_label_map(classes))


_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)


def read_label_map(path: str | Path) -> dict[int, str]:
    """Parse a label map written by this module or by the TF Object Detection API."""
    result = {}
    for body in _ITEM.findall(Path(path).read_text()):
        ident = re.search(r"\bid\s*:\s*(\d+)", body)
        name = re.search(r"\b(?:display_)?name\s*:\s*(['\"])((?:\\.|(?!\1).)*)\1", body)
        if ident and name:
            result[int(ident.group(1))] = name.group(2).replace("\\'", "'").replace("\\\\", "\\")
    if not result:
        raise ValueError(f"{path}: no 'item {{ id: N name: ... }}' entries found")
    return dict(sorted(result.items()))
