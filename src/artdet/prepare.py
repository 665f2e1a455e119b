"""All data stages in one in-process call, for scripts, notebooks and benchmarks.

The workflow runs the same functions as separate Snakemake rules (so that only
stale stages rerun); this helper chains them when a caller just wants the
TFRecords of a folder.
"""

from __future__ import annotations

from pathlib import Path

from artdet.label_map import build_classes, write_label_map
from artdet.labels_csv import write_labels
from artdet.resize import resize_dataset
from artdet.split import assign_splits, write_split
from artdet.tfrecord import write_records


def prepare_dataset(
    dataset: str | Path,
    out: str | Path,
    max_side: int = 1280,
    max_bytes: int = 200_000,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: list[str] | None = None,
) -> dict[str, int]:
    """Resize, split, write CSVs, the label map and ``train.record``/``test.record`` under ``out``.

    Returns the number of examples written per split.
    """
    out = Path(out)
    samples = resize_dataset(dataset, out / "images", out / "manifest.json", max_side=max_side, max_bytes=max_bytes)
    sides = assign_splits(samples, test_fraction, seed=seed)
    write_split(samples, sides, out / "split.csv")
    names = build_classes(classes, [o["name"] for s in samples for o in s.objects])
    write_label_map(names, out / "label_map.pbtxt")
    ids = {name: i for i, name in enumerate(names, 1)}
    counts = {}
    for split in ("train", "test"):
        write_labels(samples, sides, split, out / f"{split}_labels.csv")
        counts[split] = write_records(
            out / f"{split}_labels.csv", out / "split.csv", split, out / "images", ids, out / f"{split}.record"
        )
    return counts
