"""Write ``train_labels.csv`` and ``test_labels.csv`` in the tutorial's columns.

One row per box: filename, width, height, class, xmin, ymin, xmax, ymax, in
pixels of the resized image. Images with no boxes (negatives) have no row
here; they are listed in ``split.csv`` and still go into the TFRecords.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artdet.data.dataset import Sample

CSV_COLUMNS = ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
EXTRA_COLUMNS = ["difficult", "truncated"]


def labels_frame(samples: list[Sample], sides: dict[str, str], split: str) -> pd.DataFrame:
    rows = [
        {
            "filename": s.image,
            "width": s.width,
            "height": s.height,
            "class": obj["name"],
            "xmin": round(obj["xmin"], 2),
            "ymin": round(obj["ymin"], 2),
            "xmax": round(obj["xmax"], 2),
            "ymax": round(obj["ymax"], 2),
            "difficult": int(obj.get("difficult", False)),
            "truncated": int(obj.get("truncated", False)),
        }
        for s in samples
        if sides[s.image] == split
        for obj in s.objects
    ]
    return pd.DataFrame(rows, columns=CSV_COLUMNS + EXTRA_COLUMNS)


def write_labels(samples: list[Sample], sides: dict[str, str], split: str, path: str | Path) -> int:
    frame = labels_frame(samples, sides, split)
    frame.to_csv(path, index=False)
    return len(frame)


def read_labels(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"filename": str, "class": str}, keep_default_na=False)


def merge_csv(inputs: list[str | Path], out: str | Path) -> int:
    """Join CSV files that share a header (the shards' tables) into one; return the data rows."""
    rows = 0
    with open(out, "w", newline="") as handle:
        header = None
        for path in inputs:
            with open(path, newline="") as source:
                first = source.readline()
                if header is None:
                    header = first
                    handle.write(first)
                elif first != header:
                    raise ValueError(f"{path}: its header differs from {inputs[0]}'s; cannot join them")
                for line in source:
                    handle.write(line)
                    rows += 1
    return rows
