"""Subcommands of the labelling loop: pre-label new photos for LabelImg."""

from __future__ import annotations

import argparse

from artdet.cli.base import Command, config_option


def _prelabel_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="exported SavedModel folder or .tflite file (label_map.pbtxt beside it)")
    p.add_argument("folder", help="photos to pre-label; those with an XML file already are left alone")
    config_option(p, "--min-score", "prelabel.min_score", "boxes from this score on are written", type=float)


def _prelabel(args: argparse.Namespace) -> None:
    from artdet.deploy.prelabel import prelabel_folder
    from artdet.deploy.runtime import Detector

    written = prelabel_folder(Detector(args.model), args.folder, args.min_score)
    if not written:
        print(f"every image under {args.folder} has an XML file already; nothing written")
        return
    print(f"wrote {len(written)} LabelImg files; correct them in LabelImg, most uncertain first:")
    for item in written:
        boxes = ", ".join(f"{name} {score:.2f}" for name, score, _ in item.boxes) or "no box"
        print(f"  {item.uncertainty:.2f}  {item.xml}  ({boxes})")
    print(
        "Unreviewed files stay out of training (prelabels: review) until saved or verified in LabelImg: "
        f"labelImg {args.folder}"
    )


COMMANDS = [
    Command(
        "prelabel",
        "write LabelImg XML of a model's detections for the photos that have none (the most uncertain listed first)",
        "artdet.deploy.prelabel",
        _prelabel_arguments,
        _prelabel,
    ),
]
