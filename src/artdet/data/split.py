"""Split images into train, val and test by content, so the split never drifts.

The tutorial moves 20% of the files into ``test/`` by hand; that is neither
reproducible nor stable when images are added. Here an image's side is a pure
function of its content and a seed, so adding images never moves existing
ones, and each shard of a large dataset is split on its own. The content key
is the image's perceptual hash (dHash), so exact and near-exact copies (the
same photo re-saved, resized or re-compressed) share a side; a flat image,
whose dHash says little, falls back to its byte hash. Near-duplicates whose
hashes differ in a few bits are found across the whole dataset afterwards
(see :mod:`artdet.data.report`) and listed with a pins file that keeps them
together. A pins file moves chosen images to a fixed side.

The val side is carved out of what the two-way split gave to train: an image
whose hash lands below ``test_fraction`` is a test image whatever
``val_fraction`` is, so choosing (or changing) a val split never changes the
test set the final scores are reported on. Validation during training (the
``best`` checkpoint) reads val, never test.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

from artdet.data.dataset import Sample
from artdet.defaults import default

log = logging.getLogger(__name__)
SPLIT_FIELDS = ["filename", "split", "width", "height", "source_id", "sha1", "source", "dhash", "pinned"]
# Every side an image can be on, in the order tables and reports list them.
SIDES = ("train", "val", "test")
# The defaults of config.yaml's split:, for the command line and scripts.
DEFAULT_TEST_FRACTION: float = default("split.test_fraction")
DEFAULT_VAL_FRACTION: float = default("split.val_fraction")


class PinsError(ValueError):
    """A pins file line that cannot be used; the message names the file and line."""


def hash_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) that depends only on ``key`` and the seed."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def source_id(name: str) -> str:
    """A numeric image id from the image's path in the dataset, unique even for identical copies.

    (Model Garden parses ``image/source_id`` as an integer.)
    """
    return str(int(hashlib.sha1(name.encode()).hexdigest()[:13], 16))


def informative_dhash(dhash: str) -> bool:
    """Whether a dHash says something: a flat image's has (nearly) all bits equal."""
    return bool(dhash) and 8 <= bin(int(dhash, 16)).count("1") <= 56


def split_key(sample: Sample) -> str:
    """What decides an image's side: its dHash when informative, else its bytes' hash."""
    if informative_dhash(sample.dhash):
        return f"dhash:{sample.dhash}"
    return f"sha1:{sample.source_sha1 or sample.sha1}"


def check_fractions(test_fraction: float, val_fraction: float) -> None:
    """Raise a ValueError naming config.yaml's keys unless both fractions leave images to train on."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"split: test_fraction is {test_fraction}; it must lie between 0 and 1 (exclusive)")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"split: val_fraction is {val_fraction}; it must be at least 0 and below 1")
    if test_fraction + val_fraction >= 1:
        raise ValueError(
            f"split: test_fraction ({test_fraction}) + val_fraction ({val_fraction}) must be below 1, "
            "so that some images are left to train on; lower one of them in config.yaml"
        )


def side_of(fraction: float, test_fraction: float, val_fraction: float) -> str:
    """The side of an image whose hash gives ``fraction`` (see :func:`hash_fraction`).

    Test takes the lowest ``test_fraction`` of the range, as it did before
    there was a val split, so test membership depends on ``test_fraction``
    and the seed only; val takes the next ``val_fraction``.
    """
    if fraction < test_fraction:
        return "test"
    if fraction < test_fraction + val_fraction:
        return "val"
    return "train"


def read_pins(path: str | Path) -> dict[str, str]:
    """Read a pins file: one ``image,side`` per line (``side`` is train, val or test).

    ``image`` is the path relative to the dataset folder, or just the file
    name; ``#`` starts a comment, and a header line ``image,split`` is allowed.
    """
    pins: dict[str, str] = {}
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["image", "split"]:
                continue
            if len(row) != 2 or row[1].strip().lower() not in SIDES:
                expected = ", ".join(f"'image,{side}'" for side in SIDES)
                raise PinsError(f"{path}, line {number}: expected one of {expected}, got {','.join(row)!r}")
            pins[row[0].strip()] = row[1].strip().lower()
    return pins


def pinned_side(sample: Sample, pins: dict[str, str]) -> str | None:
    source = sample.source or sample.image
    return pins.get(source) or pins.get(Path(source).name)


def assign_splits(
    samples: list[Sample],
    test_fraction: float,
    seed: int,
    pins: dict[str, str] | None = None,
    val_fraction: float = 0.0,
) -> dict[str, str]:
    """Map each image to 'train', 'val' or 'test' (a pin wins over the hash).

    ``val_fraction`` 0 gives the two-way split; the config's default is
    :data:`DEFAULT_VAL_FRACTION`.
    """
    check_fractions(test_fraction, val_fraction)
    pins = pins or {}
    sides = {}
    for s in samples:
        side = pinned_side(s, pins)
        if side is None:
            side = side_of(hash_fraction(split_key(s), seed), test_fraction, val_fraction)
        sides[s.image] = side
    return sides


def write_split(
    samples: list[Sample], sides: dict[str, str], path: str | Path, pins: dict[str, str] | None = None
) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SPLIT_FIELDS)
        writer.writeheader()
        for s in samples:
            writer.writerow(
                {
                    "filename": s.image,
                    "split": sides[s.image],
                    "width": s.width,
                    "height": s.height,
                    "source_id": source_id(s.source or s.image),
                    "sha1": s.sha1,
                    "source": s.source,
                    "dhash": s.dhash,
                    "pinned": int(pinned_side(s, pins or {}) is not None),
                }
            )


def read_split(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_sides(path: str | Path) -> dict[str, str]:
    """Each image's side from a ``split.csv`` (image file name -> train, val or test)."""
    return {row["filename"]: row["split"] for row in read_split(path)}


def count_sides(sides: dict[str, str]) -> dict[str, int]:
    """Images per side, every side listed (0 for an empty one)."""
    return {side: sum(1 for s in sides.values() if s == side) for side in SIDES}
