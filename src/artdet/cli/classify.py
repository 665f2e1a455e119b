"""Subcommands of the classifier branch (rules/classify.smk), and `artdet classify` on pictures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from artdet.cli.base import Command, config_option, log
from artdet.defaults import choices


def _feature_options(p: argparse.ArgumentParser) -> None:
    config_option(p, "--max-side", "classify.max_side", type=int)
    config_option(p, "--upscale-to", "classify.upscale_to", type=int)
    config_option(p, "--max-features", "classify.max_features", type=int)
    config_option(p, "--contrast-threshold", "classify.contrast_threshold", type=float)


def _features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="class folders (<dataset>/<class>/*.jpg) or a LabelImg dataset (boxes -> crops)")
    p.add_argument("out", help="output .npz of the shard's features")
    p.add_argument("report", help="output .json: the shard's pictures, their side, and every drop with its reason")
    p.add_argument("--shard", type=int, default=0, help="0-based shard (files whose stem hashes to it)")
    p.add_argument("--shards", type=int, default=1)
    config_option(p, "--test-fraction", "classify.test_fraction", type=float)
    config_option(p, "--seed", "classify.seed", type=int)
    config_option(p, "--crop-padding", "classify.crop_padding", type=float)
    config_option(p, "--min-side", "classify.min_side", type=int)
    _feature_options(p)


def _features(args: argparse.Namespace) -> None:
    from artdet.classify.dataset import scan_shard
    from artdet.classify.features import FeatureSettings, write_shard

    scan = scan_shard(
        args.dataset, args.shard, args.shards, args.test_fraction, args.seed, args.crop_padding, args.min_side
    )
    for drop in scan.dropped:
        log.warning("dropped %s: %s", drop["file"], drop["reason"])
    settings = FeatureSettings(args.max_side, args.upscale_to, args.max_features, args.contrast_threshold)
    write_shard(scan, args.dataset, settings, args.out, args.report)
    print(f"shard {args.shard}/{args.shards}: {len(scan.items)} pictures, {len(scan.dropped)} dropped")


def _vocabulary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output .npy of the visual words")
    p.add_argument("features", nargs="+", help="the shards' .npz feature files")
    config_option(p, "--size", "classify.vocabulary_size", type=int)
    config_option(p, "--seed", "classify.seed", type=int)


def _vocabulary(args: argparse.Namespace) -> None:
    import numpy as np

    from artdet.classify.features import read_shards
    from artdet.classify.model import fit_vocabulary

    train = read_shards(args.features).subset("train")
    words = fit_vocabulary(train, args.size, args.seed)
    with open(args.out, "wb") as f:
        np.save(f, words)
    print(f"{len(words)} visual words from {len(train.descriptors)} descriptors of {len(train)} training pictures")


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vocabulary", required=True, help="the .npy written by classify-vocabulary")
    p.add_argument("--features", nargs="+", required=True, help="the shards' .npz feature files")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output .joblib: the SVM and its idf weights")
    _train_options(p)
    config_option(p, "--svm-c", "classify.svm_c", type=float)
    config_option(p, "--class-weight", "classify.class_weight", choices=choices("classify.class_weight"))
    config_option(p, "--colour-weight", "classify.colour_weight", type=float)
    config_option(p, "--seed", "classify.seed", type=int)
    p.add_argument("--shuffle-labels", action="store_true", help="train on shuffled labels (a sanity check)")


def _train(args: argparse.Namespace) -> None:
    import joblib
    import numpy as np

    from artdet.classify.features import read_shards
    from artdet.classify.model import train_svm

    train = read_shards(args.features).subset("train")
    if args.shuffle_labels:
        train.labels = np.random.default_rng(args.seed).permutation(train.labels)
    trained = train_svm(train, np.load(args.vocabulary), args.svm_c, args.class_weight, args.colour_weight, args.seed)
    trained["colour_weight"] = args.colour_weight
    joblib.dump(trained, args.out)
    print(f"linear SVM on {len(train)} training pictures of {len(set(train.labels.tolist()))} classes")


def _true_false(value: str) -> bool:
    if value.lower() not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")
    return value.lower() == "true"


def _min_inliers(value: str) -> int | str:
    """``auto`` (fitted on held-out training pictures at export) or a number of inliers, 4 or more."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 4:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number of 4 or more, not {value!r}")
    return int(value)


def _threshold(value: str) -> float | str:
    """``auto`` (fitted at export) or a score between 0 and 1."""
    if value == "auto":
        return value
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected auto or a score from 0 to 1, not {value!r}")
    return number


def _model_settings(args: argparse.Namespace, colour_weight: float, unknown_threshold: float) -> dict:
    """The exported model's settings from the command line: feature extraction and the decision."""
    from artdet.classify.model import settings_from

    keys = ("max_side", "upscale_to", "max_features", "contrast_threshold", "top_k", "verify", "min_inliers")
    values = {key: getattr(args, key) for key in (*keys, "references")}
    return settings_from({**values, "colour_weight": colour_weight, "unknown_threshold": unknown_threshold})


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output model.joblib (classes, feature settings, vocabulary, SVM, references)")
    p.add_argument("--trained", required=True, help="the .joblib written by classify-train")
    _train_options(p)
    _feature_options(p)
    config_option(p, "--top-k", "classify.top_k", type=int)
    config_option(p, "--unknown-threshold", "classify.unknown_threshold", type=_threshold)
    config_option(p, "--verify", "classify.verify", type=_true_false, help="geometric check: true or false")
    config_option(p, "--min-inliers", "classify.min_inliers", type=_min_inliers)
    config_option(p, "--references", "classify.references", type=int)
    config_option(p, "--unseen", "classify.unseen", help="photos of works not in the collection: half calibrate")


def _export(args: argparse.Namespace) -> None:
    import joblib
    import numpy as np

    from artdet.classify.calibrate import calibrated
    from artdet.classify.features import read_shards
    from artdet.classify.model import export

    trained = joblib.load(args.trained)
    settings = _model_settings(args, trained["colour_weight"], args.unknown_threshold)
    train = read_shards(args.features).subset("train")
    vocabulary = np.load(args.vocabulary)
    settings = calibrated(settings, train, vocabulary, trained, args.unseen)
    bundle = export(train, vocabulary, trained, settings, args.out)
    print(f"wrote {args.out}: {len(bundle['classes'])} classes, {Path(args.out).stat().st_size / 1e6:.1f} MB")


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model.joblib")
    p.add_argument("out_dir", help="output folder: metrics.json, confusion_matrix.png, worst_examples.jpg, ...")
    p.add_argument("--dataset", required=True, help="the dataset folder the shard reports' paths are relative to")
    p.add_argument("--features", nargs="+", required=True, help="the shards' .npz feature files")
    p.add_argument("--reports", nargs="+", required=True, help="the shards' .json reports")
    config_option(p, "--unseen", "classify.unseen", help="folder of photos of works not in the collection")


def _evaluate(args: argparse.Namespace) -> None:
    from artdet.classify.evaluate import evaluate
    from artdet.classify.features import read_shards

    features = read_shards(args.features)
    items = {i["id"]: i for r in args.reports for i in json.loads(Path(r).read_text())["items"]}
    train_labels = features.subset("train").labels.tolist()
    m = evaluate(args.model, args.dataset, features.subset("test"), items, train_labels, args.out_dir, args.unseen)
    line = (
        f"accuracy {m['accuracy']} | balanced {m['balanced_accuracy']} | top-3 {m['top3_accuracy']} | "
        f"baseline {m['baseline']['accuracy']} | {m['latency_ms']['median']} ms/picture"
    )
    if "unseen" in m:
        line += f" | unseen called unknown {m['unseen']['rejection_rate']}"
    print(line)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output .json (a .md beside it)")
    p.add_argument("reports", nargs="+", help="the shards' .json reports")


def _report(args: argparse.Namespace) -> None:
    from artdet.classify.report import write_report

    body = write_report([Path(r) for r in args.reports], Path(args.out))
    print(f"{body['pictures']} pictures of {len(body['classes'])} classes, {len(body['dropped'])} dropped")


def _classify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model.joblib written by classify-export")
    p.add_argument("source", help="an image, a folder (searched recursively) or a glob")
    config_option(p, "--top-k", "classify.top_k", type=int)
    p.add_argument("--out", help="also write the answers here as JSON lines")


def _classify(args: argparse.Namespace) -> None:
    from artdet.classify.model import Classifier
    from artdet.classify.predict import classify_files

    classifier = Classifier(args.model)
    out = open(args.out, "w") if args.out else None  # noqa: SIM115 (closed below, after the loop)
    try:
        for path, answer in classify_files(classifier, args.source, args.top_k):
            line = json.dumps({"file": str(path), **answer})
            print(line, file=sys.stdout)
            if out:
                out.write(line + "\n")
    finally:
        if out:
            out.close()


def _box_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="the detector's dataset folder (the original photos)")
    p.add_argument("validated", help="the shard's validated.json (boxes in the upright original pixels)")
    p.add_argument("manifest", help="the shard's manifest.json (resized image -> source photo)")
    p.add_argument("split", help="the shard's split.csv: only train-side boxes become crops")
    p.add_argument("out", help="output .npz of the crops' features")
    p.add_argument("report", help="output .json: the crops, boxes per side, every drop with its reason")
    config_option(p, "--crop-padding", "classify.crop_padding", type=float)
    config_option(p, "--min-side", "classify.min_side", type=int)
    _feature_options(p)


def _box_features(args: argparse.Namespace) -> None:
    from artdet.classify.boxes import train_crops
    from artdet.classify.features import FeatureSettings, write_shard
    from artdet.data.dataset import read_manifest
    from artdet.data.split import read_sides
    from artdet.data.validate import DatasetValidation

    sides = read_sides(args.split)
    sources = {s.source: sides[s.image] for s in read_manifest(args.manifest) if s.image in sides}
    scan, boxes = train_crops(DatasetValidation.read(args.validated).images, sources, args.crop_padding, args.min_side)
    settings = FeatureSettings(args.max_side, args.upscale_to, args.max_features, args.contrast_threshold)
    write_shard(scan, args.dataset, settings, args.out, args.report, {"boxes_per_side": boxes})
    print(
        f"{len(scan.items)} train crops ({boxes['val']} val and {boxes['test']} test boxes not cropped), "
        f"{len(scan.dropped)} dropped"
    )


def _box_classifier_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", help="output folder: model.joblib and summary.json")
    p.add_argument("--features", nargs="+", required=True, help="the shards' box_features.npz files")
    p.add_argument("--reports", nargs="+", required=True, help="the shards' box_features.json reports")
    config_option(p, "--vocabulary-size", "classify.vocabulary_size", type=int)
    config_option(p, "--svm-c", "classify.svm_c", type=float)
    config_option(p, "--class-weight", "classify.class_weight", choices=choices("classify.class_weight"))
    config_option(p, "--colour-weight", "classify.colour_weight", type=float)
    config_option(p, "--seed", "classify.seed", type=int)
    config_option(p, "--top-k", "classify.top_k", type=int)
    config_option(p, "--verify", "classify.box_verify", type=_true_false, help="geometric check: true or false")
    config_option(p, "--min-inliers", "classify.min_inliers", type=_min_inliers)
    config_option(p, "--references", "classify.references", type=int)
    config_option(p, "--crop-padding", "classify.crop_padding", type=float)
    _feature_options(p)


def _box_classifier(args: argparse.Namespace) -> None:
    from artdet.classify.boxes import train_box_classifier

    settings = _model_settings(args, args.colour_weight, unknown_threshold=0.0)
    settings["crop_padding"] = args.crop_padding
    summary = train_box_classifier(
        args.features,
        args.reports,
        args.out_dir,
        settings,
        args.vocabulary_size,
        args.svm_c,
        args.class_weight,
        args.seed,
    )
    print(
        f"box classifier: {summary['crops']} train crops of {len(summary['crops_per_class'])} classes, "
        f"{summary['seconds']['total']} s (features {summary['seconds']['features']} s)"
    )


COMMANDS = [
    Command(
        "classify-features",
        "check one shard of a classifier dataset, split it, and extract SIFT and colour features",
        "artdet.classify.features",
        _features_arguments,
        _features,
    ),
    Command(
        "classify-report",
        "merge the shards' reports: pictures per class and side, every dropped file with its reason",
        "artdet.classify.report",
        _report_arguments,
        _report,
    ),
    Command(
        "classify-vocabulary",
        "fit the visual vocabulary (k-means of training descriptors)",
        "artdet.classify.model",
        _vocabulary_arguments,
        _vocabulary,
    ),
    Command("classify-train", "train the linear SVM", "artdet.classify.model", _train_arguments, _train),
    Command(
        "classify-export",
        "write the classifier as one joblib file (classes, settings, vocabulary, SVM, references)",
        "artdet.classify.model",
        _export_arguments,
        _export,
    ),
    Command(
        "classify-evaluate",
        "score the classifier on the test side (and unseen works)",
        "artdet.classify.evaluate",
        _evaluate_arguments,
        _evaluate,
    ),
    Command(
        "box-features",
        "features of one data shard's train-split boxes, cropped from the original photos (two-stage models)",
        "artdet.classify.boxes",
        _box_features_arguments,
        _box_features,
    ),
    Command(
        "box-classifier",
        "train the classifier that names a class-agnostic detector's boxes (two-stage models)",
        "artdet.classify.boxes",
        _box_classifier_arguments,
        _box_classifier,
    ),
    Command(
        "classify",
        "name the artwork (class) in images or folders with an exported classifier",
        "artdet.classify.predict",
        _classify_arguments,
        _classify,
    ),
]
