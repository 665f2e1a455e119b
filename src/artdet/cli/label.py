"""Subcommands of the labelling loop (rules/review.smk, and by hand): pre-label new photos, review the labels."""

from __future__ import annotations

import argparse

from artdet.cli.base import Command, config_option, log


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


def _review_folds_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("records", nargs="+", help="every TFRecord file of the data stages (train, val and test)")
    p.add_argument("--manifests", nargs="+", required=True, help="the shards' manifest.json (record image -> photo)")
    config_option(p, "--folds", "review.folds", "how many folds", type=int)
    p.add_argument("--out-dir", required=True, help="folder for fold<k>.tfrecord and folds.csv")


def _review_folds(args: argparse.Namespace) -> None:
    from artdet.data.folds import write_folds

    counts = write_folds(args.records, args.manifests, args.folds, args.out_dir)
    log.info("review folds | images per fold: %s", ", ".join(map(str, counts)))
    empty = [k for k, n in enumerate(counts) if n == 0]
    if empty:
        raise ValueError(
            f"review: folds {empty} got no image; set review: folds lower (there are {sum(counts)} images)"
        )


def _review_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the fold's exported SavedModel (trained on the other folds)")
    p.add_argument("--folds-csv", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--validated", nargs="+", required=True, help="the shards' validated.json (labels, XML indices)")
    p.add_argument("--dataset", required=True, help="the dataset folder (the original photos)")
    p.add_argument("--out", required=True, help="predictions.json")


def _review_predict(args: argparse.Namespace) -> None:
    from artdet.data.folds import read_folds
    from artdet.evaluate.review_outputs import fold_images, predict, write_predictions

    images = fold_images(read_folds(args.folds_csv), args.fold, args.validated)
    predict(args.model, images, args.dataset)
    write_predictions(images, args.out)


def _review_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictions", nargs="+", help="every fold's predictions.json")
    p.add_argument("--label-map", required=True)
    p.add_argument("--dataset", required=True, help="the dataset folder (the original photos)")
    p.add_argument("--out-dir", required=True, help="folder for issues.csv, review.html, images.txt, summary.json")
    config_option(p, "--scorer", "review.scorer", "how issues are ranked", choices=["artdet", "cleanlab"])
    config_option(p, "--high-score", "review.high_score", "cleanlab: this sure renames a box", type=float)
    config_option(p, "--low-score", "review.low_score", "a prediction this sure can place or add a box", type=float)
    config_option(p, "--thumbnails", "review.thumbnails", "issues drawn in review.html", type=int)


def _review(args: argparse.Namespace) -> None:
    from artdet.evaluate.review_outputs import review

    summary = review(
        args.predictions,
        args.label_map,
        args.dataset,
        args.out_dir,
        args.scorer,
        args.high_score,
        args.low_score,
        args.thumbnails,
    )
    for row in summary["top"]:
        print(f"  {row['rank']:>3}  {row['kind']:<9} {row['suspicion']:.2f}  {row['image']}  {row['suggestion']}")
    print(f"{summary['issues']} ranked; open the photos of {summary['list']} in LabelImg, the first first")


COMMANDS = [
    Command(
        "prelabel",
        "write LabelImg XML of a model's detections for the photos that have none (the most uncertain listed first)",
        "artdet.deploy.prelabel",
        _prelabel_arguments,
        _prelabel,
    ),
    Command(
        "review-folds",
        "split every labelled image into the review's folds (a TFRecord file each, and folds.csv)",
        "artdet.data.folds",
        _review_folds_arguments,
        _review_folds,
    ),
    Command(
        "review-predict",
        "predict one fold's images with the detector trained on the other folds",
        "artdet.evaluate.review_outputs",
        _review_predict_arguments,
        _review_predict,
    ),
    Command(
        "review",
        "rank the labels that are probably wrong: issues.csv, review.html and the photos to open in LabelImg",
        "artdet.evaluate.review_outputs",
        _review_arguments,
        _review,
    ),
]
