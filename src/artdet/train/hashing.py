"""sha256 of files read in blocks: TFRecords and checkpoints are too large to read at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def update_from_file(digest: hashlib._Hash, path: str | Path) -> None:
    """Feed the bytes of ``path`` to ``digest``, 1 MiB at a time (one digest can then span several files)."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of one file's bytes."""
    digest = hashlib.sha256()
    update_from_file(digest, path)
    return digest.hexdigest()
