"""All data stages in one in-process call, for scripts, notebooks and benchmarks.

The workflow runs the same functions as separate Snakemake jobs, one per stage
and shard (so that only stale shards rerun); this helper chains them when a
caller just wants the TFRecords of a folder. The layout of ``out`` is the
workflow's ``results/data``.
"""

from __future__ import annotations

from pathlib import Path

from artdet.data.classes import discover_classes, scan_names
from artdet.data.dataset import shard_name
from artdet.data.label_map import write_label_map
from artdet.data.labels_csv import write_labels
from artdet.data.report import build_report, write_report
from artdet.data.resize import resize_images
from artdet.data.split import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SIDES, assign_splits, write_split
from artdet.data.tfrecord import concat_records, write_records
from artdet.data.validate import Options, validate_dataset
from artdet.defaults import default


def dataset_classes(dataset: str | Path) -> list[str]:
    """The classes found in every XML file under ``dataset`` (normalised, sorted)."""
    xmls = sorted(p for p in Path(dataset).rglob("*.xml") if not p.name.startswith("."))
    return discover_classes(scan_names(xmls))


def prepare_dataset(
    dataset: str | Path,
    out: str | Path,
    max_side: int = default("resize.max_side"),
    max_bytes: int = default("resize.max_bytes"),
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = default("split.seed"),
    classes: list[str] | None = None,
    shards: int = 1,
    options: Options | None = None,
    pins: dict[str, str] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> dict[str, int]:
    """Validate, resize, split and write CSVs, the label map, the report and the TFRecords under ``out``.

    Besides the sharded records (``records/train-00000-of-00001.tfrecord``),
    ``train.record``, ``val.record`` and ``test.record`` hold each split in
    one file (``val.record`` is empty with ``val_fraction=0``). The fractions
    default to config.yaml's. Returns the number of examples written per split.
    """
    out = Path(out)
    options = options or Options()
    classes = list(classes or options.classes or dataset_classes(dataset))
    options.classes = classes
    (out / "records").mkdir(parents=True, exist_ok=True)
    write_label_map(classes, out / "label_map.pbtxt")
    ids = {name: i for i, name in enumerate(classes, 1)}
    counts = dict.fromkeys(SIDES, 0)
    shard_dirs: list[Path] = []
    records: dict[str, list[Path]] = {side: [] for side in SIDES}
    for index in range(shards):
        name = shard_name(index, shards)
        shard_dir = out / "shards" / name
        shard_dir.mkdir(parents=True, exist_ok=True)
        validation = validate_dataset(dataset, options, shard=index if shards > 1 else None, shards=shards)
        validation.write(shard_dir / "validated.json")
        samples = resize_images(
            dataset, validation, shard_dir / "images", shard_dir / "manifest.json", max_side, max_bytes
        )
        sides = assign_splits(samples, test_fraction, seed, pins, val_fraction)
        write_split(samples, sides, shard_dir / "split.csv", pins)
        for split in SIDES:
            write_labels(samples, sides, split, shard_dir / f"{split}_labels.csv")
            record = out / "records" / f"{split}-{name}.tfrecord"
            counts[split] += write_records(samples, sides, split, shard_dir / "images", ids, record)
            records[split].append(record)
        shard_dirs.append(shard_dir)
    for split in SIDES:
        concat_records(records[split], out / f"{split}.record")
    report = build_report(shard_dirs, pins=pins, val_fraction=val_fraction)
    write_report(report, out / "validation_report.json", out / "validation_report.md")
    return counts
