"""Split images into train and test by content hash, so the split never drifts.

The tutorial moves 20% of the files into ``test/`` by hand; that is neither
reproducible nor stable when images are added. Here an image's side is a pure
function of its bytes and a seed: adding images never moves existing ones.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

from artdet.dataset import Sample

log = logging.getLogger(__name__)
SPLIT_FIELDS = ["filename", "split", "width", "height", "source_id", "sha1"]


def hash_fraction(sha1: str, seed: int) -> float:
    """A number in [0, 1) that depends only on the image bytes' hash and the seed."""
    digest = hashlib.sha1(f"{seed}:{sha1}".encode()).hexdigest()
    return int(digest[:12], 16) / float(16**12)


def source_id(sha1: str) -> str:
    """A numeric image id (Model Garden parses ``image/source_id`` as an integer)."""
    return str(int(sha1[:13], 16))


def assign_splits(samples: list[Sample], test_fraction: float, seed: int) -> dict[str, str]:
    """Map each image to 'train' or 'test'.

    When the hash puts no image on one side of a non-trivial dataset, the image
    nearest the threshold moves over, so that both sides exist.
    """
    scores = {s.image: hash_fraction(s.sha1, seed) for s in samples}
    sides = {name: "test" if score < test_fraction else "train" for name, score in scores.items()}
    if len(samples) >= 2 and test_fraction > 0:
        for side in ("test", "train"):
            if side not in sides.values():
                pick = min(scores, key=lambda n: abs(scores[n] - test_fraction))
                log.warning("no image fell in %s; moving %s there", side, pick)
                sides[pick] = side
    return sides


def write_split(samples: list[Sample], sides: dict[str, str], path: str | Path) -> None:
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
                    "source_id": source_id(s.sha1),
                    "sha1": s.sha1,
                }
            )


def read_split(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
