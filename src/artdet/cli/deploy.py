"""Subcommands that export and use a trained model (rules/export.smk, and by hand): export, detect, serve."""

from __future__ import annotations

import argparse
import os

from artdet.cli.base import Command, config_option, log

_CHECKPOINT_HELP = "final (after the last step) or best (highest validation AP50 during training)"


def _checkpoint_option(p: argparse.ArgumentParser) -> None:
    from artdet.deploy.export import CHECKPOINTS  # light: no TensorFlow at import

    config_option(p, "--checkpoint", "models.*.export_checkpoint", _CHECKPOINT_HELP, choices=CHECKPOINTS)


def _classifier_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--box-classifier",
        help="a two-stage model's box classifier (model.joblib): written beside the model as classifier.joblib",
    )


def _add_classifier(args: argparse.Namespace, folder: str | os.PathLike) -> None:
    """Put the box classifier beside an exported model, which makes it a two-stage model."""
    import shutil
    from pathlib import Path

    from artdet.classify.boxes import CLASSIFIER_FILE

    if args.box_classifier:
        shutil.copyfile(args.box_classifier, Path(folder) / CLASSIFIER_FILE)
        log.info("two-stage | %s names the detector's boxes", Path(folder) / CLASSIFIER_FILE)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--label-map", required=True)
    _checkpoint_option(p)
    _classifier_option(p)
    p.add_argument("out")
    p.add_argument(
        "--val-records",
        nargs="+",
        help="then score the SavedModel on these (the val split) and store its score threshold in it (best F1)",
    )
    p.add_argument("--val-dir", help="with --val-records: folder for the val evaluation (metrics.json, plots)")
    p.add_argument("--operating-point", metavar="JSON", help="with --val-records: the threshold, also written here")
    config_option(p, "--iou", "evaluation.iou_threshold", "IoU of a match on val", type=float)
    p.add_argument("--originals", help="the dataset folder: a two-stage model is scored on the original photos")
    p.add_argument("--manifests", nargs="+", help="the shards' manifest.json (record image -> original photo)")


def _export(args: argparse.Namespace) -> None:
    from artdet.deploy.export import export

    export(args.pipeline, args.model_dir, args.label_map, args.out, args.checkpoint)
    _add_classifier(args, args.out)
    if args.val_records:
        from artdet.evaluate.evaluator import evaluate_model

        if not (args.val_dir and args.operating_point):
            raise ValueError("--val-records needs --val-dir and --operating-point")
        evaluate_model(
            args.out,
            args.val_records,
            args.val_dir,
            iou_threshold=args.iou,
            originals=args.originals,
            manifests=args.manifests,
            fit_operating_point=args.operating_point,
        )


def _export_tflite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output .tflite file (label map and artdet_model.json go beside it)")
    p.add_argument("--pipeline", required=True, help="the model's pipeline.yaml")
    p.add_argument("--model-dir", required=True, help="its training folder (checkpoints)")
    p.add_argument("--label-map", required=True)
    p.add_argument("--precision", choices=["float32", "float16", "int8"], default="float32")
    p.add_argument("--calibration-records", nargs="+", help="training TFRecords (int8 calibration images)")
    p.add_argument("--calibration-count", type=int, default=100, help="images used for int8 calibration")
    _checkpoint_option(p)
    _classifier_option(p)
    p.add_argument(
        "--operating-point",
        metavar="JSON",
        help="the SavedModel's score threshold (results/<model>/operating_point.json): written beside the file",
    )


def _export_tflite(args: argparse.Namespace) -> None:
    from artdet.deploy.tflite import calibration_images, export_tflite

    calibration = None
    if args.precision == "int8":
        if not args.calibration_records:
            raise ValueError("int8 needs --calibration-records (the training TFRecords)")
        calibration = calibration_images(args.calibration_records, args.calibration_count)
    path = export_tflite(
        args.pipeline, args.model_dir, args.label_map, args.out, args.precision, calibration, args.checkpoint
    )
    _add_classifier(args, path.parent)
    if args.operating_point:
        import shutil

        from artdet.deploy.runtime import OPERATING_POINT_FILE

        shutil.copyfile(args.operating_point, path.parent / OPERATING_POINT_FILE)
    log.info("wrote %s (%.1f MB, %s)", path, path.stat().st_size / 1e6, args.precision)


def _detect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported SavedModel folder or .tflite file (label_map.pbtxt beside it)")
    p.add_argument("source", help="image, folder (recursive), glob, video file, camera index (0) or stream URL")
    p.add_argument("--out", default="detections", help="output folder (default: ./detections)")
    config_option(
        p, "--min-score", "detect.min_score", "score threshold; none: the model's own, fitted on val", type=float
    )
    p.add_argument("--max-detections", type=int, default=100)
    p.add_argument("--classes", nargs="*", help="keep only these classes")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="detections file format")
    p.add_argument("--batch-size", type=int, default=4, help="images of one size per model call")
    p.add_argument("--show", action="store_true", help="show a live window (needs a display)")
    p.add_argument("--no-save", action="store_true", help="write only the detections, no annotated media")
    p.add_argument(
        "--alternatives",
        action="store_true",
        help="draw each box's other likely classes as a second line (they are always in the detections file)",
    )


def _detect(args: argparse.Namespace) -> None:
    from artdet.deploy.detect import run

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
        alternatives=args.alternatives,
    )
    print(stats.summary())
    if stats.skipped:
        print(f"skipped {len(stats.skipped)} unreadable files: " + ", ".join(stats.skipped[:10]))


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    from artdet.deploy.limits import Limits  # light: no FastAPI or TensorFlow at import

    p.add_argument("models", nargs="*", help="exported model folders, optionally named: NAME=PATH")
    p.add_argument(
        "--classifier", help="an artwork classifier's model.joblib (results/classify/): adds POST /v1/classify"
    )
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to be reached from a phone (then set --api-key)")
    p.add_argument("--port", type=int, default=8000)
    config_option(p, "--max-upload-mb", "serve.max_upload_mb", "largest upload accepted", type=float)
    config_option(p, "--max-megapixels", "serve.max_megapixels", "largest image accepted", type=float)
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=Limits.max_concurrency,
        help=f"requests decoded and run at once (default {Limits.max_concurrency})",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=Limits.max_queue,
        help=f"requests waiting for a turn; beyond them 503 with Retry-After (default {Limits.max_queue})",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("ARTDET_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1/* (default: $ARTDET_API_KEY; none: open)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin allowed to call the API from a browser, e.g. https://gallery.example (repeatable)",
    )


def _serve(args: argparse.Namespace) -> None:
    from artdet.deploy.limits import MIB, Limits
    from artdet.deploy.serve import serve

    limits = Limits(
        max_bytes=int(args.max_upload_mb * MIB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
    )
    if not args.models and not args.classifier:
        raise ValueError("nothing to serve: name an exported detector, or --classifier model.joblib")
    serve(args.models, args.host, args.port, limits, args.api_key or None, args.cors_origin, args.classifier)


COMMANDS = [
    Command(
        "export",
        "export a trained checkpoint as a SavedModel",
        "artdet.deploy.export",
        _export_arguments,
        _export,
    ),
    Command(
        "export-tflite",
        "export a trained one-stage model to TFLite (float32/float16/int8)",
        "artdet.deploy.tflite",
        _export_tflite_arguments,
        _export_tflite,
    ),
    Command(
        "detect",
        "run a model on images, a folder, a glob, a video, a camera or a stream",
        "artdet.deploy.detect",
        _detect_arguments,
        _detect,
    ),
    Command(
        "serve",
        "HTTP API and web page for one or more models",
        "artdet.deploy.serve",
        _serve_arguments,
        _serve,
    ),
]
