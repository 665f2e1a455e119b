"""Subcommands of the training stages (rules/train.smk): experiment config, checkpoints, training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from artdet.cli.base import Command, config_option, log


def _fetch_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="registry name, e.g. retinanet_resnet50_coco")
    config_option(p, "--cache", "checkpoint_cache", "download cache folder")
    p.add_argument("--lock", default="checkpoints.lock.json", help="sha256 lock file (created on first use)")
    p.add_argument("--out", required=True, help="output checkpoint.json (prefix, modules, sha256)")


def _fetch_checkpoint(args: argparse.Namespace) -> None:
    from artdet.train.checkpoints import fetch

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


def _pipeline_config_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--class-agnostic",
        action="store_true",
        help="the detector of a two-stage model: one class; a classifier names the boxes",
    )
    p.add_argument(
        "--classifier-summary",
        help="the box classifier's summary.json: its seconds come off the model's time_budget",
    )
    p.add_argument("out")


def _pipeline_config(args: argparse.Namespace) -> None:
    from artdet.data.example_proto import count_records
    from artdet.data.label_map import read_label_map
    from artdet.train.pipeline_config import write_pipeline

    model = json.loads(args.model_json)
    labels = read_label_map(args.label_map)
    classes = [labels[k] for k in sorted(labels)]
    train = [str(Path(p).resolve()) for p in args.train]
    val = [str(Path(p).resolve()) for p in args.val]
    init = json.loads(Path(args.pretrained).read_text()) if args.pretrained else None
    stats = json.loads(Path(args.stats).read_text()) if args.stats else None
    reserved = 0.0
    if args.classifier_summary:
        reserved = float(json.loads(Path(args.classifier_summary).read_text())["seconds"]["total"])
    length = write_pipeline(
        model,
        len(classes),
        train,
        val,
        args.out,
        init,
        classes,
        val_images=count_records(val),
        box_stats=stats,
        class_agnostic=args.class_agnostic,
        reserved_seconds=reserved,
    )
    if args.class_agnostic:
        log.info("two-stage | the detector trains with one class; a classifier names the %d classes", len(classes))
    if reserved:
        log.info("time budget | %.0f s of it went to the box classifier; the detector plans within the rest", reserved)
    log.info("length | %s", length.reason)
    if model.get("anchors") == "fit":
        log.info("anchors | %s", yaml.safe_load(Path(args.out).read_text())["artdet"]["anchors"])


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--log",
        help="write everything to this file and show only the progress lines on the console (as under Snakemake)",
    )
    # The model written, the process ends without TensorFlow's slow teardown (artdet.cli.end_process).
    p.set_defaults(end_process=True)


def _train(args: argparse.Namespace) -> None:
    from artdet.train.progress import log_to
    from artdet.train.trainer import train, use_onednn_kernels

    if args.log:
        # results/<model>/train -> "<model> | " before each console line.
        log_to(args.log, prefix=f"{Path(args.model_dir).resolve().parent.name} | ")
    use_onednn_kernels()
    train(args.pipeline, args.model_dir, seed=args.seed)


def _plot_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("event_dir")
    p.add_argument("out")


def _plot_training(args: argparse.Namespace) -> None:
    from artdet.train.curves import plot_training

    plot_training(args.event_dir, args.out)


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--path", default=".", help="where to measure the free disk (default: here)")


def _doctor(args: argparse.Namespace) -> None:
    from artdet.train.doctor import collect, report

    info = collect(args.path)
    print(json.dumps(info, indent=2) if args.json else report(info))


COMMANDS = [
    Command(
        "fetch-checkpoint",
        "download (once) and verify a pretrained checkpoint",
        "artdet.train.checkpoints",
        _fetch_checkpoint_arguments,
        _fetch_checkpoint,
    ),
    Command(
        "pipeline-config",
        "render the Model Garden experiment config",
        "artdet.train.pipeline_config",
        _pipeline_config_arguments,
        _pipeline_config,
    ),
    Command("train", "train with TF Model Garden", "artdet.train.trainer", _train_arguments, _train),
    Command(
        "doctor",
        "what this machine offers for training (GPUs, CUDA, memory, disk, packages) and which presets fit",
        "artdet.train.doctor",
        _doctor_arguments,
        _doctor,
    ),
    Command(
        "plot-training",
        "plot losses and learning rate from TensorBoard events",
        "artdet.train.curves",
        _plot_training_arguments,
        _plot_training,
    ),
]
