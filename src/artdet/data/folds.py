"""Folds of the label review: every labelled image is predicted by a model that did not train on it.

A model finds its own training labels right, errors included; a label is only put in doubt by a
model that never saw it. The review splits every image of the records (train, val and test
alike: a wrong label anywhere misleads) into ``folds`` parts and trains one detector per part on
the others (cross-validation, as cleanlab asks for). An image's fold follows from its source
path alone, as its shard does, so adding photos leaves every other image in its fold.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

FOLDS_CSV = "folds.csv"


def fold_of(source: str, folds: int) -> int:
    """The fold (0..folds-1) of an image, from its path in the dataset."""
    return int(hashlib.sha1(f"review:{source}".encode()).hexdigest(), 16) % folds


def fold_record(out_dir: str | Path, fold: int) -> Path:
    return Path(out_dir) / f"fold{fold}.tfrecord"


def write_folds(records: list[str | Path], manifests: list[str | Path], folds: int, out_dir: str | Path) -> list[int]:
    """Route every example of ``records`` to its fold's TFRecord file; write ``folds.csv``.

    The examples are copied byte for byte (nothing is decoded or re-encoded). Returns the
    number of images per fold.
    """
    import tensorflow as tf

    from artdet.data.dataset import read_manifest

    if folds < 2:
        raise ValueError(f"review: folds is {folds}; at least 2 are needed (each fold is predicted by the others)")
    sources = {s.image: s.source for m in manifests for s in read_manifest(m)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = [tf.io.TFRecordWriter(str(fold_record(out_dir, k))) for k in range(folds)]
    rows, counts = [], [0] * folds
    try:
        for path in records:
            for raw in tf.data.TFRecordDataset(str(path)):
                example = tf.train.Example.FromString(raw.numpy())
                image = example.features.feature["image/filename"].bytes_list.value[0].decode()
                if image not in sources:
                    raise ValueError(f"{path}: {image} is not in the shards' manifests; rebuild the data stages")
                k = fold_of(sources[image], folds)
                writers[k].write(raw.numpy())
                rows.append({"source": sources[image], "image": image, "fold": k})
                counts[k] += 1
    finally:
        for writer in writers:
            writer.close()
    with open(out_dir / FOLDS_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "image", "fold"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["source"]))
    return counts


def read_folds(path: str | Path) -> dict[str, int]:
    """source -> fold, from ``folds.csv``."""
    with open(path, newline="") as handle:
        return {row["source"]: int(row["fold"]) for row in csv.DictReader(handle)}
