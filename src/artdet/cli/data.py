"""Subcommands of the data stages (rules/data.smk): LabelImg folder in, records and reports out."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from artdet.cli.base import Command, config_option, log, pins
from artdet.defaults import choices


def _demo_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out")
    config_option(p, "--seed", "demo.seed", type=int)
    config_option(p, "--count", "demo.count", type=int)
    p.add_argument("--config", help="read count and seed from the 'demo:' section of this config.yaml")
    p.add_argument(
        "--variant",
        default="gallery",
        help="gallery (default): four distinct styles; lookalike: three portraits differing in a small attribute",
    )
    p.add_argument(
        "--classify",
        action="store_true",
        help="the classifier's demo instead: OUT/<work>/ photos of 20 artworks, OUT-unseen/ photos of others",
    )
    p.add_argument("--photos", type=int, default=12, help="with --classify: photos per artwork (default 12)")


def _demo_data(args: argparse.Namespace) -> None:
    from artdet.data.demo import generate

    count, seed = args.count, args.seed
    if args.classify:
        from artdet.classify.demo import WORKS
        from artdet.classify.demo import generate as generate_classify

        unseen = generate_classify(args.out, photos=args.photos, seed=seed)
        print(f"wrote {args.photos} photos of each of {len(WORKS)} artworks to {args.out}, unseen works to {unseen}")
        return
    if args.config:
        demo = (yaml.safe_load(Path(args.config).read_text()) or {}).get("demo") or {}
        count, seed = int(demo.get("count", count)), int(demo.get("seed", seed))
    boxes = generate(args.out, count=count, seed=seed, variant=args.variant)
    print(f"wrote {count} {args.variant} images with {boxes} boxes to {args.out}")


def _data_options(p: argparse.ArgumentParser) -> None:
    """config.yaml's data settings, shared by `validate` (and its stand-alone report)."""
    p.add_argument("--classes", nargs="*", default=None, help="label-map classes in order (default: found)")
    config_option(p, "--unknown-classes", "unknown_classes", choices=choices("unknown_classes"))
    config_option(p, "--negatives", "negatives", "images without XML", choices=choices("negatives"))
    config_option(
        p,
        "--exif-boxes",
        "exif_boxes",
        "which pixels the boxes of EXIF-rotated images refer to",
        choices=choices("exif_boxes"),
    )
    config_option(p, "--prelabels", "prelabels", "unreviewed `artdet prelabel` files", choices=choices("prelabels"))
    config_option(p, "--strict", "strict", "fail on any warning", action="store_true")


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="folder of images and LabelImg XML, searched recursively")
    p.add_argument("--out", help="write the validated images of the dataset (or of --shard) as JSON")
    p.add_argument("--shard", type=int, help="validate only this shard (0-based)")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--report", help="without --out: write the report here (.json and .md)")
    config_option(p, "--max-side", "resize.max_side", "without --out: resize to this before the report", type=int)
    p.add_argument("--pins", help="pins file (image,train|val|test per line)")
    _data_options(p)


def _validate(args: argparse.Namespace) -> None:
    from artdet.data.dataset import shard_name
    from artdet.data.validate import Options, validate_dataset

    options = Options(
        classes=args.classes or None,
        unknown_classes=args.unknown_classes,
        negatives=args.negatives,
        exif_boxes=args.exif_boxes,
        prelabels=args.prelabels,
        strict=args.strict,
    )
    if args.out:
        validation = validate_dataset(args.dataset, options, shard=args.shard, shards=args.shards)
        validation.write(args.out)
        where = f"shard {shard_name(args.shard, args.shards)}" if args.shard is not None else "dataset"
        log.info(
            "%s: %d images, %d boxes, %d findings",
            where,
            len(validation.images),
            validation.boxes_found,
            len(validation.issues),
        )
        return
    # Stand-alone check of a whole folder: the full pipeline into a scratch folder, then the report.
    import tempfile

    from artdet.data.prepare import prepare_dataset

    with tempfile.TemporaryDirectory() as scratch:
        prepare_dataset(args.dataset, scratch, max_side=args.max_side, options=options, pins=pins(args))
        text = (Path(scratch) / "validation_report.md").read_text()
        if args.report:
            Path(args.report).with_suffix(".md").write_text(text)
            Path(args.report).with_suffix(".json").write_bytes((Path(scratch) / "validation_report.json").read_bytes())
        print(text)


def _resize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="the dataset folder the validated paths are relative to")
    p.add_argument("validated", help="JSON written by `artdet validate --out`")
    p.add_argument("images", help="output folder for the resized images")
    p.add_argument("manifest", help="output JSON listing every image and its boxes")
    config_option(p, "--max-side", "resize.max_side", type=int)
    config_option(p, "--max-bytes", "resize.max_bytes", type=int)


def _resize(args: argparse.Namespace) -> None:
    from artdet.data.resize import resize_images
    from artdet.data.validate import DatasetValidation

    resize_images(
        args.dataset, DatasetValidation.read(args.validated), args.images, args.manifest, args.max_side, args.max_bytes
    )


def _split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest")
    p.add_argument("out")
    config_option(p, "--test-fraction", "split.test_fraction", type=float)
    config_option(
        p,
        "--val-fraction",
        "split.val_fraction",
        "share of images for validation during training, taken from train (0: none)",
        type=float,
    )
    config_option(p, "--seed", "split.seed", type=int)
    p.add_argument("--pins", help="pins file (image,train|val|test per line)")
    p.add_argument("--pins-json", help="pins as a JSON object {image: side}")


def _split(args: argparse.Namespace) -> None:
    from artdet.data.dataset import read_manifest
    from artdet.data.split import assign_splits, count_sides, write_split

    samples = read_manifest(args.manifest)
    pinned = pins(args)
    sides = assign_splits(samples, args.test_fraction, args.seed, pinned, args.val_fraction)
    write_split(samples, sides, args.out, pinned)
    counts = ", ".join(f"{n} {side}" for side, n in count_sides(sides).items())
    log.info("split %d images: %s", len(sides), counts)


def _side_outputs(p: argparse.ArgumentParser, what: str) -> None:
    from artdet.data.split import SIDES  # light: no TensorFlow at import

    for side in SIDES:
        p.add_argument(f"--{side}", help=f"output {what} of the {side} split")


def _csv_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest")
    p.add_argument("split_csv")
    _side_outputs(p, "CSV")


def _csv(args: argparse.Namespace) -> None:
    from artdet.data.dataset import read_manifest
    from artdet.data.labels_csv import write_labels
    from artdet.data.split import SIDES, read_sides

    samples = read_manifest(args.manifest)
    sides = read_sides(args.split_csv)
    for split in SIDES:
        out = getattr(args, split)
        if out:
            rows = write_labels(samples, sides, split, out)
            log.info("wrote %d %s boxes to %s", rows, split, out)


def _merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")


def _merge_csv(args: argparse.Namespace) -> None:
    from artdet.data.labels_csv import merge_csv

    rows = merge_csv(args.inputs, args.out)
    log.info("merged %d rows from %d files into %s", rows, len(args.inputs), args.out)


def _label_map_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out")
    p.add_argument("--classes", nargs="*", default=None, help="class order")
    p.add_argument("--dataset", help="without --classes: use the classes found in this folder's XML")


def _label_map(args: argparse.Namespace) -> None:
    from artdet.data.label_map import write_label_map
    from artdet.data.prepare import dataset_classes

    classes = args.classes or (dataset_classes(args.dataset) if args.dataset else None)
    if not classes:
        raise ValueError("no classes: list them with --classes, or pass a dataset folder with labelled objects")
    write_label_map(classes, args.out)
    log.info("label map with %d classes: %s", len(classes), ", ".join(classes))


def _tfrecord_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest")
    p.add_argument("split_csv")
    p.add_argument("images")
    p.add_argument("label_map")
    _side_outputs(p, "TFRecord")


def _tfrecord(args: argparse.Namespace) -> None:
    from artdet.data.dataset import read_manifest
    from artdet.data.label_map import read_label_map
    from artdet.data.split import SIDES, read_sides
    from artdet.data.tfrecord import write_records

    class_ids = {name: ident for ident, name in read_label_map(args.label_map).items()}
    samples = read_manifest(args.manifest)
    sides = read_sides(args.split_csv)
    for split in SIDES:
        out = getattr(args, split)
        if out:
            count = write_records(samples, sides, split, args.images, class_ids, out)
            log.info("wrote %d %s examples to %s", count, split, out)


def _merge_records(args: argparse.Namespace) -> None:
    from artdet.data.tfrecord import concat_records

    concat_records(args.inputs, args.out)
    log.info("joined %d TFRecord files into %s", len(args.inputs), args.out)


def _data_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", help="shard folders (validated.json, manifest.json, split.csv)")
    p.add_argument("--json", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--html", help="also write the report as an HTML page")
    config_option(p, "--near-duplicate-distance", "split.near_duplicate_distance", type=int)
    config_option(
        p,
        "--val-fraction",
        "split.val_fraction",
        "the split's val fraction (0: an empty val split is no warning)",
        type=float,
    )
    p.add_argument("--pins", help="pins file, to check that every pinned image exists")
    config_option(p, "--strict", "strict", "fail on any warning", action="store_true")


def _data_report(args: argparse.Namespace) -> None:
    from artdet.data.report import build_report, write_report

    report = build_report(
        args.shards,
        near_duplicate_distance=args.near_duplicate_distance,
        pins=pins(args),
        val_fraction=args.val_fraction,
    )
    write_report(report, args.json, args.md, strict=args.strict, html_path=args.html)


def _stats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", help="shard folders (manifest.json, split.csv, images/)")
    p.add_argument("--label-map", required=True)
    p.add_argument("--out-dir", required=True)


def _stats(args: argparse.Namespace) -> None:
    from artdet.data.label_map import read_label_map
    from artdet.data.stats import write_stats

    stats = write_stats(args.shards, list(read_label_map(args.label_map).values()), args.out_dir)
    log.info("%d images, %d boxes; statistics in %s", stats["images"]["total"], stats["boxes"], args.out_dir)


COMMANDS = [
    Command(
        "demo-data",
        "generate the demo dataset (JPEG + LabelImg XML)",
        "artdet.data.demo",
        _demo_data_arguments,
        _demo_data,
    ),
    Command(
        "validate",
        "check and repair a labelled dataset; report every finding",
        "artdet.data.validate",
        _validate_arguments,
        _validate,
    ),
    Command(
        "resize",
        "resize validated images to the limits and rescale their boxes",
        "artdet.data.resize",
        _resize_arguments,
        _resize,
    ),
    Command(
        "split",
        "assign each image to train, val or test by its content",
        "artdet.data.split",
        _split_arguments,
        _split,
    ),
    Command(
        "csv",
        "write the tutorial's train_labels.csv / test_labels.csv (and val)",
        "artdet.data.labels_csv",
        _csv_arguments,
        _csv,
    ),
    Command(
        "merge-csv",
        "join CSV files with one header (shards into one table)",
        "artdet.data.labels_csv",
        _merge_arguments,
        _merge_csv,
    ),
    Command(
        "label-map",
        "generate label_map.pbtxt from the classes",
        "artdet.data.label_map",
        _label_map_arguments,
        _label_map,
    ),
    Command(
        "tfrecord",
        "write the TFRecords of one shard",
        "artdet.data.tfrecord",
        _tfrecord_arguments,
        _tfrecord,
    ),
    Command(
        "merge-records",
        "join TFRecord files (shards into train.record)",
        "artdet.data.tfrecord",
        _merge_arguments,
        _merge_records,
    ),
    Command(
        "data-report",
        "the dataset's validation report from its shards",
        "artdet.data.report",
        _data_report_arguments,
        _data_report,
    ),
    Command(
        "stats",
        "dataset statistics, plots and a contact sheet",
        "artdet.data.stats",
        _stats_arguments,
        _stats,
    ),
]

__all__ = ["COMMANDS"]
