"""Class names: normalise what labellers typed and fix the label-map order.

LabelImg users type class names by hand, so one dataset often holds
``Raccoon``, ``raccoon`` and ``raccoon `` for one class; the tutorial's
``class_text_to_int`` then returns None for two of them. Here names that
differ only in case or surrounding white space are one class, spelled the way
most boxes spell it (or as config.yaml spells it), and every box whose
spelling changed is reported.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lxml import etree


def name_key(name: str) -> str:
    """The comparison key of a class name: surrounding white space stripped, case folded."""
    return name.strip().casefold()


def discover_classes(counts: Counter[str] | Iterable[str]) -> list[str]:
    """The sorted class list of a dataset from the names its boxes use.

    Spellings with the same :func:`name_key` form one class; its name is the
    most frequent stripped spelling (ties: the first in sort order).
    """
    counts = Counter(counts)
    spellings: dict[str, Counter[str]] = {}
    for raw, n in counts.items():
        key = name_key(raw)
        if key:
            spellings.setdefault(key, Counter())[raw.strip()] += n
    chosen = [min(c, key=lambda s: (-c[s], s)) for c in spellings.values()]
    return sorted(chosen, key=lambda s: (name_key(s), s))


class ClassResolver:
    """Map a box's raw name to its class in the label map, or None if it is not one."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self._by_key: dict[str, str] = {}
        for name in classes:
            key = name_key(name)
            if key in self._by_key:
                raise ValueError(f"classes {self._by_key[key]!r} and {name!r} differ only in case or spaces; keep one")
            self._by_key[key] = name

    def __call__(self, raw: str) -> str | None:
        return self._by_key.get(name_key(raw))


def read_box_names(xml_path: str | Path) -> list[str]:
    """The ``<object><name>`` texts of one VOC file, in order (unparsable files give [])."""
    try:
        root = etree.parse(str(xml_path)).getroot()
    except (etree.XMLSyntaxError, OSError):
        return []
    return [(obj.findtext("name") or "") for obj in root.iter("object")]


def scan_names(xml_paths: Iterable[str | Path], cache_path: str | Path | None = None) -> Counter[str]:
    """Count the box names of many VOC files, reusing a cache keyed by size and mtime.

    The workflow calls this while it builds its job graph (the label map must be
    known before the sharded TFRecord jobs run), so a rerun over ten thousand
    unchanged files must not parse them again.
    """
    cache: dict[str, list] = {}
    if cache_path and Path(cache_path).is_file():
        try:
            cache = json.loads(Path(cache_path).read_text())
        except ValueError:
            cache = {}
    fresh: dict[str, list] = {}
    counts: Counter[str] = Counter()
    for path in map(str, xml_paths):
        stat = os.stat(path)
        stamp = [stat.st_mtime_ns, stat.st_size]
        entry = cache.get(path)
        names = entry[2] if entry and entry[:2] == stamp else read_box_names(path)
        fresh[path] = [*stamp, names]
        counts.update(names)
    if cache_path and fresh != cache:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{cache_path}.tmp")
        tmp.write_text(json.dumps(fresh))
        tmp.replace(cache_path)
    return counts
