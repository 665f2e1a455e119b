"""Generate ``label_map.pbtxt`` from the classes, never by hand.

Ids start at 1 (0 is the background in the TF Object Detection API and in
Model Garden). The order is the one given in config.yaml, or the sorted class
names found in the data (see :mod:`artdet.data.classes`), so the same data always
gives the same ids.
"""

from __future__ import annotations

import re
from pathlib import Path


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
