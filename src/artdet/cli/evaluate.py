"""Subcommands of the evaluation stages (rules/evaluate.smk): score exported models, compare them."""

from __future__ import annotations

import argparse

from artdet.cli.base import Command, config_option, log


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported SavedModel folder or .tflite file")
    p.add_argument("test_records", nargs="+", help="TFRecord files of the test split")
    p.add_argument("--out-dir", required=True, help="folder for metrics.json, CSVs and plots")
    config_option(p, "--iou", "evaluation.iou_threshold", "IoU of a match (confusion matrix, errors)", type=float)
    config_option(
        p,
        "--score",
        "evaluation.score_threshold",
        "score threshold (confusion matrix, errors, drawn figures); none: the model's own",
        type=float,
    )
    p.add_argument("--worst", type=int, default=8, help="how many of the worst images to draw")
    p.add_argument("--reference", help="the SavedModel's detections.json: compare this export with it")
    config_option(
        p,
        "--tolerance",
        "evaluation.export_tolerance",
        "AP or AP50 lost against the reference beyond this flags the export",
        type=float,
    )
    config_option(
        p,
        "--found-min-score",
        "evaluation.found_min_score",
        "the reference's detections from this score on must be found again",
        type=float,
    )

    p.add_argument("--originals", help="the dataset folder: detect on each image's original photo (two-stage models)")
    p.add_argument("--manifests", nargs="+", help="the shards' manifest.json (record image -> original photo)")
    p.add_argument(
        "--fit-operating-point",
        metavar="JSON",
        help="fit the model's score threshold on these records (the val split): best F1 of its boxes; "
        "written beside the model (operating_point.json) and to JSON",
    )


def _evaluate(args: argparse.Namespace) -> None:
    from artdet.evaluate.evaluator import evaluate_model

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
        originals=args.originals,
        manifests=args.manifests,
        fit_operating_point=args.fit_operating_point,
    )
    if not m.get("images", 1):
        return
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


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_prefix", help="output path without suffix (writes .csv .json .md .png)")
    p.add_argument("metrics", nargs="+", help="metrics.json files written by `artdet evaluate`")


def _compare(args: argparse.Namespace) -> None:
    from artdet.evaluate.compare import compare, warnings

    rows = compare(args.metrics, args.out_prefix)
    log.info("compared %d models into %s.{csv,json,md,png}", len(rows), args.out_prefix)
    for line in warnings(rows):
        log.warning(line)


def _choose_form_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output form.json (a form.html beside it)")
    p.add_argument("--model", required=True, help="the model's name in config.yaml")
    p.add_argument("--mode", required=True, choices=["auto", "on", "off"], help="its classifier: setting")
    p.add_argument("--detector-val", help="the detector's metrics.json on the val split")
    p.add_argument("--two-stage-val", help="the two-stage model's metrics.json on the val split")
    p.add_argument("--classes", type=int, help="the dataset's class count (one class: nothing to name)")


def _choose_form(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from artdet.evaluate.forms import choose_form, form_html

    choice = choose_form(args.model, args.mode, args.detector_val, args.two_stage_val, args.classes)
    Path(args.out).write_text(json.dumps(choice, indent=1) + "\n")
    Path(args.out).with_suffix(".html").write_text(form_html(choice))
    log.info("form | %s: kept %s (%s)", args.model, choice["kept"], choice["reason"])


COMMANDS = [
    Command(
        "evaluate",
        "full evaluation of an exported model on the test TFRecords",
        "artdet.evaluate.evaluator",
        _evaluate_arguments,
        _evaluate,
    ),
    Command(
        "choose-form",
        "keep the detector or the two-stage form of a model, by their AP50 on the val split",
        "artdet.evaluate.forms",
        _choose_form_arguments,
        _choose_form,
    ),
    Command(
        "compare",
        "compare evaluated models: accuracy against latency and size",
        "artdet.evaluate.compare",
        _compare_arguments,
        _compare,
    ),
]
