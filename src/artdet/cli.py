"""The ``artdet`` command line: one subcommand per workflow stage.

Every Snakemake rule calls one of these subcommands, so each stage can also be
run by hand. Errors in the user's data or config end with a one-line message
that names the file, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from artdet.validate import Options

log = logging.getLogger("artdet")


def _cmd_demo_data(args: argparse.Namespace) -> None:
    from artdet.demo_data import generate

    count, seed = args.count, args.seed
    if args.config:
        demo = (yaml.safe_load(Path(args.config).read_text()) or {}).get("demo") or {}
        count, seed = int(demo.get("count", count)), int(demo.get("seed", seed))
    boxes = generate(args.out, count=count, seed=seed, variant=args.variant)
    print(f"wrote {count} {args.variant} images with {boxes} boxes to {args.out}")


def _options(args: argparse.Namespace) -> Options:
    from artdet.validate import Options

    return Options(
        classes=args.classes or None,
        unknown_classes=args.unknown_classes,
        negatives=args.negatives,
        exif_boxes=args.exif_boxes,
        strict=args.strict,
    )


def _cmd_validate(args: argparse.Namespace) -> None:
    from artdet.dataset import shard_name
    from artdet.validate import validate_dataset

    options = _options(args)
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

    from artdet.prepare import prepare_dataset

    with tempfile.TemporaryDirectory() as scratch:
        prepare_dataset(args.dataset, scratch, max_side=args.max_side, options=options, pins=_pins(args))
        report = Path(scratch) / "validation_report.md"
        text = report.read_text()
        if args.report:
            Path(args.report).with_suffix(".md").write_text(text)
            Path(args.report).with_suffix(".json").write_bytes((Path(scratch) / "validation_report.json").read_bytes())
        print(text)


def _pins(args: argparse.Namespace) -> dict[str, str]:
    from artdet.split import read_pins

    if getattr(args, "pins_json", None):
        return json.loads(args.pins_json)
    return read_pins(args.pins) if getattr(args, "pins", None) else {}


def _cmd_resize(args: argparse.Namespace) -> None:
    from artdet.resize import resize_images
    from artdet.validate import Validation

    resize_images(
        args.dataset, Validation.read(args.validated), args.images, args.manifest, args.max_side, args.max_bytes
    )


def _cmd_split(args: argparse.Namespace) -> None:
    from artdet.dataset import read_manifest
    from artdet.split import assign_splits, count_sides, write_split

    samples = read_manifest(args.manifest)
    pins = _pins(args)
    sides = assign_splits(samples, args.test_fraction, args.seed, pins, args.val_fraction)
    write_split(samples, sides, args.out, pins)
    counts = ", ".join(f"{n} {side}" for side, n in count_sides(sides).items())
    log.info("split %d images: %s", len(sides), counts)


def _cmd_csv(args: argparse.Namespace) -> None:
    from artdet.dataset import read_manifest
    from artdet.labels_csv import write_labels
    from artdet.split import SIDES, read_sides

    samples = read_manifest(args.manifest)
    sides = read_sides(args.split_csv)
    for split in SIDES:
        out = getattr(args, split)
        if out:
            rows = write_labels(samples, sides, split, out)
            log.info("wrote %d %s boxes to %s", rows, split, out)


def _cmd_merge_csv(args: argparse.Namespace) -> None:
    from artdet.labels_csv import merge_csv

    rows = merge_csv(args.inputs, args.out)
    log.info("merged %d rows from %d files into %s", rows, len(args.inputs), args.out)


def _cmd_label_map(args: argparse.Namespace) -> None:
    from artdet.label_map import write_label_map
    from artdet.prepare import dataset_classes

    classes = args.classes or (dataset_classes(args.dataset) if args.dataset else None)
    if not classes:
        raise ValueError("no classes: list them with --classes, or pass a dataset folder with labelled objects")
    write_label_map(classes, args.out)
    log.info("label map with %d classes: %s", len(classes), ", ".join(classes))


def _cmd_tfrecord(args: argparse.Namespace) -> None:
    from artdet.dataset import read_manifest
    from artdet.label_map import read_label_map
    from artdet.split import SIDES, read_sides
    from artdet.tfrecord import write_records

    class_ids = {name: ident for ident, name in read_label_map(args.label_map).items()}
    samples = read_manifest(args.manifest)
    sides = read_sides(args.split_csv)
    for split in SIDES:
        out = getattr(args, split)
        if out:
            count = write_records(samples, sides, split, args.images, class_ids, out)
            log.info("wrote %d %s examples to %s", count, split, out)


def _cmd_merge_records(args: argparse.Namespace) -> None:
    from artdet.tfrecord import concat_records

    concat_records(args.inputs, args.out)
    log.info("joined %d TFRecord files into %s", len(args.inputs), args.out)


def _cmd_data_report(args: argparse.Namespace) -> None:
    from artdet.data_report import build_report, write_report

    report = build_report(
        args.shards,
        near_duplicate_distance=args.near_duplicate_distance,
        pins=_pins(args),
        val_fraction=args.val_fraction,
    )
    write_report(report, args.json, args.md, strict=args.strict, html_path=args.html)


def _cmd_stats(args: argparse.Namespace) -> None:
    from artdet.label_map import read_label_map
    from artdet.stats import write_stats

    stats = write_stats(args.shards, list(read_label_map(args.label_map).values()), args.out_dir)
    log.info("%d images, %d boxes; statistics in %s", stats["images"]["total"], stats["boxes"], args.out_dir)


def _cmd_pipeline_config(args: argparse.Namespace) -> None:
    from artdet.example_proto import count_records
    from artdet.label_map import read_label_map
    from artdet.pipeline_config import write_pipeline

    model = json.loads(args.model_json)
    labels = read_label_map(args.label_map)
    classes = [labels[k] for k in sorted(labels)]
    train = [str(Path(p).resolve()) for p in args.train]
    val = [str(Path(p).resolve()) for p in args.val]
    init = json.loads(Path(args.pretrained).read_text()) if args.pretrained else None
    stats = json.loads(Path(args.stats).read_text()) if args.stats else None
    length = write_pipeline(
        model, len(classes), train, val, args.out, init, classes, val_images=count_records(val), box_stats=stats
    )
    log.info("length | %s", length.reason)
    if model.get("anchors") == "fit":
        log.info("anchors | %s", yaml.safe_load(Path(args.out).read_text())["artdet"]["anchors"])


def _cmd_fetch_checkpoint(args: argparse.Namespace) -> None:
    from artdet.checkpoints import fetch

    info = fetch(args.name, args.cache, args.lock)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n")
    log.info(
        "checkpoint %s: %s (sha256 %s, initialises %s)",
        args.name,
        info["prefix"],
        info["sha256"][:12],
        ", ".join(info["modules"]),
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from artdet.train import train, use_onednn_kernels

    use_onednn_kernels()
    train(args.pipeline, args.model_dir, seed=args.seed)


def _cmd_export(args: argparse.Namespace) -> None:
    from artdet.export import export

    export(args.pipeline, args.model_dir, args.label_map, args.out, args.checkpoint)


def _cmd_export_tflite(args: argparse.Namespace) -> None:
    from artdet.tflite import calibration_images, export_tflite

    calibration = None
    if args.precision == "int8":
        if not args.calibration_records:
            raise ValueError("int8 needs --calibration-records (the training TFRecords)")
        calibration = calibration_images(args.calibration_records, args.calibration_count)
    path = export_tflite(
        args.pipeline, args.model_dir, args.label_map, args.out, args.precision, calibration, args.checkpoint
    )
    log.info("wrote %s (%.1f MB, %s)", path, path.stat().st_size / 1e6, args.precision)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from artdet.evaluate import evaluate_model

    m = evaluate_model(
        args.model,
        args.test_records,
        args.out_dir,
        iou_threshold=args.iou,
        score_threshold=args.score,
        worst=args.worst,
        reference=args.reference,
        tolerance=args.tolerance,
        found_min_score=args.found_min_score,
    )
    log.info(
        "AP %.3f  AP50 %.3f  AP75 %.3f  latency %.1f ms (p90 %.1f)  %.1f MB",
        m["AP"],
        m["AP50"],
        m["AP75"],
        m["latency_ms"]["median"],
        m["latency_ms"]["p90"],
        m["size_mb"],
    )
    if "versus_reference" in m:
        v = m["versus_reference"]
        log.info(
            "against the reference: %s; finds %s of its %s detections (score >= %s)",
            "  ".join(f"{name} {d:+.3f}" for name, d in v["difference"].items()),
            v["found"]["matched"],
            v["found"]["reference_detections"],
            v["found"]["min_score"],
        )


def _cmd_compare(args: argparse.Namespace) -> None:
    from artdet.compare import compare, warnings

    rows = compare(args.metrics, args.out_prefix)
    log.info("compared %d models into %s.{csv,json,md,png}", len(rows), args.out_prefix)
    for line in warnings(rows):
        log.warning(line)


def _cmd_plot_training(args: argparse.Namespace) -> None:
    from artdet.curves import plot_training

    plot_training(args.event_dir, args.out)


def _cmd_detect(args: argparse.Namespace) -> None:
    from artdet.detect import run

    stats = run(
        args.model,
        args.source,
        args.out,
        min_score=args.min_score,
        max_detections=args.max_detections,
        classes=args.classes,
        output_format=args.format,
        batch_size=args.batch_size,
        show=args.show,
        save_media=not args.no_save,
    )
    print(stats.summary())
    if stats.skipped:
        print(f"skipped {len(stats.skipped)} unreadable files: " + ", ".join(stats.skipped[:10]))


def _cmd_serve(args: argparse.Namespace) -> None:
    from artdet.serve import Limits, serve

    limits = Limits(max_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=int(args.max_megapixels * 1e6))
    serve(args.models, args.host, args.port, limits)


def build_parser() -> argparse.ArgumentParser:
    from artdet.split import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, SIDES  # light: no TensorFlow at import

    parser = argparse.ArgumentParser(prog="artdet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo-data", help="generate the demo dataset (JPEG + LabelImg XML)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=360)
    p.add_argument("--config", help="read count and seed from the 'demo:' section of this config.yaml")
    p.add_argument(
        "--variant",
        default="gallery",
        help="gallery (default): four distinct styles; lookalike: three portraits differing in a small attribute",
    )
    p.set_defaults(func=_cmd_demo_data)

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--classes", nargs="*", default=None, help="label-map classes in order (default: found)")
        p.add_argument("--unknown-classes", choices=["error", "ignore"], default="error")
        p.add_argument("--negatives", choices=["keep", "drop"], default="keep", help="images without XML")
        p.add_argument(
            "--exif-boxes",
            choices=["auto", "stored", "oriented"],
            default="auto",
            help="which pixels the boxes of EXIF-rotated images refer to",
        )
        p.add_argument("--strict", action="store_true", help="fail on any warning")

    p = sub.add_parser("validate", help="check and repair a labelled dataset; report every finding")
    p.add_argument("dataset", help="folder of images and LabelImg XML, searched recursively")
    p.add_argument("--out", help="write the validated images of the dataset (or of --shard) as JSON")
    p.add_argument("--shard", type=int, help="validate only this shard (0-based)")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--report", help="without --out: write the report here (.json and .md)")
    p.add_argument("--max-side", type=int, default=1280)
    p.add_argument("--pins", help="pins file (image,train|val|test per line)")
    data_options(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("resize", help="resize validated images to the limits and rescale their boxes")
    p.add_argument("dataset", help="the dataset folder the validated paths are relative to")
    p.add_argument("validated", help="JSON written by `artdet validate --out`")
    p.add_argument("images", help="output folder for the resized images")
    p.add_argument("manifest", help="output JSON listing every image and its boxes")
    p.add_argument("--max-side", type=int, default=1280)
    p.add_argument("--max-bytes", type=int, default=200_000)
    p.set_defaults(func=_cmd_resize)

    p = sub.add_parser("split", help="assign each image to train, val or test by its content")
    p.add_argument("manifest")
    p.add_argument("out")
    p.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    p.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        help="share of images for validation during training, taken from train (0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pins", help="pins file (image,train|val|test per line)")
    p.add_argument("--pins-json", help="pins as a JSON object {image: side}")
    p.set_defaults(func=_cmd_split)

    p = sub.add_parser("csv", help="write the tutorial's train_labels.csv / test_labels.csv (and val)")
    p.add_argument("manifest")
    p.add_argument("split_csv")
    for side in SIDES:
        p.add_argument(f"--{side}", help=f"output CSV of the {side} split")
    p.set_defaults(func=_cmd_csv)

    p = sub.add_parser("merge-csv", help="join CSV files with one header (shards into one table)")
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=_cmd_merge_csv)

    p = sub.add_parser("label-map", help="generate label_map.pbtxt from the classes")
    p.add_argument("out")
    p.add_argument("--classes", nargs="*", default=None, help="class order")
    p.add_argument("--dataset", help="without --classes: use the classes found in this folder's XML")
    p.set_defaults(func=_cmd_label_map)

    p = sub.add_parser("tfrecord", help="write the TFRecords of one shard")
    p.add_argument("manifest")
    p.add_argument("split_csv")
    p.add_argument("images")
    p.add_argument("label_map")
    for side in SIDES:
        p.add_argument(f"--{side}", help=f"output TFRecord of the {side} split")
    p.set_defaults(func=_cmd_tfrecord)

    p = sub.add_parser("merge-records", help="join TFRecord files (shards into train.record)")
    p.add_argument("out")
    p.add_argument("inputs", nargs="+")
    p.set_defaults(func=_cmd_merge_records)

    p = sub.add_parser("data-report", help="the dataset's validation report from its shards")
    p.add_argument("shards", nargs="+", help="shard folders (validated.json, manifest.json, split.csv)")
    p.add_argument("--json", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--html", help="also write the report as an HTML page")
    p.add_argument("--near-duplicate-distance", type=int, default=6)
    p.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        help="the split's val fraction (0: an empty val split is no warning)",
    )
    p.add_argument("--pins", help="pins file, to check that every pinned image exists")
    p.add_argument("--strict", action="store_true", help="fail on any warning")
    p.set_defaults(func=_cmd_data_report)

    p = sub.add_parser("stats", help="dataset statistics, plots and a contact sheet")
    p.add_argument("shards", nargs="+", help="shard folders (manifest.json, split.csv, images/)")
    p.add_argument("--label-map", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("fetch-checkpoint", help="download (once) and verify a pretrained checkpoint")
    p.add_argument("name", help="registry name, e.g. retinanet_resnet50_coco")
    p.add_argument("--cache", default="~/.cache/artdet/checkpoints", help="download cache folder")
    p.add_argument("--lock", default="checkpoints.lock.json", help="sha256 lock file (created on first use)")
    p.add_argument("--out", required=True, help="output checkpoint.json (prefix, modules, sha256)")
    p.set_defaults(func=_cmd_fetch_checkpoint)

    p = sub.add_parser("pipeline-config", help="render the Model Garden experiment config")
    p.add_argument("--model-json", required=True, help="one model entry of config.yaml, as JSON")
    p.add_argument("--label-map", required=True)
    p.add_argument("--train", required=True, nargs="+", help="training TFRecord files")
    p.add_argument(
        "--val",
        required=True,
        nargs="+",
        help="val TFRecord files, scored during training (when they hold no image, validation is off)",
    )
    p.add_argument("--pretrained", help="checkpoint.json written by `artdet fetch-checkpoint`")
    p.add_argument("--stats", help="stats.json written by `artdet stats` (needed by anchors: fit)")
    p.add_argument("out")
    p.set_defaults(func=_cmd_pipeline_config)

    p = sub.add_parser("train", help="train with TF Model Garden")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_train)

    from artdet.export import CHECKPOINTS  # light: no TensorFlow at import

    checkpoint_help = "final (after the last step) or best (highest validation AP50 during training)"
    p = sub.add_parser("export", help="export a trained checkpoint as a SavedModel")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--label-map", required=True)
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="final", help=checkpoint_help)
    p.add_argument("out")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("export-tflite", help="export a trained one-stage model to TFLite (float32/float16/int8)")
    p.add_argument("out", help="output .tflite file (label map and artdet_model.json go beside it)")
    p.add_argument("--pipeline", required=True, help="the model's pipeline.yaml")
    p.add_argument("--model-dir", required=True, help="its training folder (checkpoints)")
    p.add_argument("--label-map", required=True)
    p.add_argument("--precision", choices=["float32", "float16", "int8"], default="float32")
    p.add_argument("--calibration-records", nargs="+", help="training TFRecords (int8 calibration images)")
    p.add_argument("--calibration-count", type=int, default=100, help="images used for int8 calibration")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="final", help=checkpoint_help)
    p.set_defaults(func=_cmd_export_tflite)

    from artdet.evaluate import EXPORT_TOLERANCE, FOUND_MIN_SCORE  # light: NumPy only at import

    p = sub.add_parser("evaluate", help="full evaluation of an exported model on the test TFRecords")
    p.add_argument("model", help="exported SavedModel folder or .tflite file")
    p.add_argument("test_records", nargs="+", help="TFRecord files of the test split")
    p.add_argument("--out-dir", required=True, help="folder for metrics.json, CSVs and plots")
    p.add_argument("--iou", type=float, default=0.5, help="IoU of a match (confusion matrix, errors)")
    p.add_argument("--score", type=float, default=0.5, help="score threshold (confusion matrix, errors)")
    p.add_argument("--worst", type=int, default=8, help="how many of the worst images to draw")
    p.add_argument("--reference", help="the SavedModel's detections.json: compare this export with it")
    p.add_argument(
        "--tolerance",
        type=float,
        default=EXPORT_TOLERANCE,
        help=f"AP, AP50 or AR100 lost against the reference beyond this flags the export (default {EXPORT_TOLERANCE})",
    )
    p.add_argument(
        "--found-min-score",
        type=float,
        default=FOUND_MIN_SCORE,
        help=f"the reference's detections from this score on must be found again (default {FOUND_MIN_SCORE})",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare", help="compare evaluated models: accuracy against latency and size")
    p.add_argument("out_prefix", help="output path without suffix (writes .csv .json .md .png)")
    p.add_argument("metrics", nargs="+", help="metrics.json files written by `artdet evaluate`")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("plot-training", help="plot losses and learning rate from TensorBoard events")
    p.add_argument("event_dir")
    p.add_argument("out")
    p.set_defaults(func=_cmd_plot_training)

    p = sub.add_parser("detect", help="run a model on images, a folder, a glob, a video, a camera or a stream")
    p.add_argument("model", help="exported SavedModel folder or .tflite file (label_map.pbtxt beside it)")
    p.add_argument("source", help="image, folder (recursive), glob, video file, camera index (0) or stream URL")
    p.add_argument("--out", default="detections", help="output folder (default: ./detections)")
    p.add_argument("--min-score", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument("--max-detections", type=int, default=100)
    p.add_argument("--classes", nargs="*", help="keep only these classes")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="detections file format")
    p.add_argument("--batch-size", type=int, default=4, help="images of one size per model call")
    p.add_argument("--show", action="store_true", help="show a live window (needs a display)")
    p.add_argument("--no-save", action="store_true", help="write only the detections, no annotated media")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("serve", help="HTTP API and web page for one or more models")
    p.add_argument("models", nargs="+", help="exported model folders, optionally named: NAME=PATH")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=20.0)
    p.add_argument("--max-megapixels", type=float, default=40.0)
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from artdet.checkpoints import CheckpointError
    from artdet.dataset import DatasetError
    from artdet.detect import SourceError
    from artdet.voc import AnnotationError

    try:
        args.func(args)
    except (
        CheckpointError,
        DatasetError,
        AnnotationError,
        SourceError,
        ValueError,
        FileNotFoundError,
        yaml.YAMLError,
    ) as exc:
        print(f"artdet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
