"""The artwork classifier (SIFT + visual words + colour, linear SVM, homography check) on two collections.

1. The generated demo: 20 artworks x 12 photos, and 20 photos of unseen paintings that it
   should call "unknown" (acceptance: test accuracy >= 0.95, rejection >= 0.9). The table
   shows the check's margin (the fewest inliers of a correctly named photo beside the most
   inliers of a stranger's) and the same model without the check, which names a work for
   every stranger: the rejection figure can fall.
2. Crops of BCCD's boxes (three cell types, mostly red cells), without the geometric check
   (cells are not flat copies of one picture): balanced accuracy and per-class recall
   beside the majority-class baseline.

Each case also trains on shuffled labels, which must fall to about chance. The stages are
the workflow's own functions, run in-process on a cached copy of the data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from common import CACHE, SHARED, median, save


def run_case(
    name: str,
    dataset: Path,
    overrides: dict,
    unseen: Path | None = None,
    shuffle: bool = False,
    features_of: str | None = None,
) -> dict:
    """Features, vocabulary, SVM, export and evaluation of one dataset; the metrics and stage times.

    ``features_of`` names another case whose cached features this one reuses (same data and
    feature settings, other decision settings).
    """
    from artdet.classify.dataset import scan_shard
    from artdet.classify.evaluate import evaluate
    from artdet.classify.features import FeatureSettings, read_shards, write_shard
    from artdet.classify.model import export, fit_vocabulary, settings_from, train_svm
    from artdet.defaults import default

    cfg = {**default("classify"), **overrides}
    out = CACHE / "classify" / name
    out.mkdir(parents=True, exist_ok=True)
    store = CACHE / "classify" / (features_of or name)
    store.mkdir(parents=True, exist_ok=True)
    times = {}
    start = time.perf_counter()
    shards = []
    for shard in range(cfg["shards"]):
        npz, report = store / f"features-{shard}.npz", store / f"features-{shard}.json"
        if not npz.exists():
            scan = scan_shard(dataset, shard, cfg["shards"], cfg["test_fraction"], cfg["seed"], cfg["crop_padding"])
            write_shard(
                scan,
                dataset,
                FeatureSettings(cfg["max_side"], cfg["upscale_to"], cfg["max_features"], cfg["contrast_threshold"]),
                npz,
                report,
            )
        shards.append((npz, report))
    times["features_s"] = round(time.perf_counter() - start, 1)
    features = read_shards([s[0] for s in shards])
    train, test = features.subset("train"), features.subset("test")
    if shuffle:
        train.labels = np.random.default_rng(0).permutation(train.labels)
    start = time.perf_counter()
    vocabulary = fit_vocabulary(train, cfg["vocabulary_size"], cfg["seed"])
    times["vocabulary_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    trained = train_svm(train, vocabulary, cfg["svm_c"], cfg["class_weight"], cfg["colour_weight"], cfg["seed"])
    times["train_s"] = round(time.perf_counter() - start, 1)
    model = out / ("model-shuffled.joblib" if shuffle else "model.joblib")
    export(train, vocabulary, trained, settings_from(cfg), model)
    items = {i["id"]: i for _, r in shards for i in json.loads(Path(r).read_text())["items"]}
    runs = [
        evaluate(
            model, dataset, test, items, train.labels.tolist(), out / ("eval-shuffled" if shuffle else "eval"), unseen
        )
        for _ in range(1 if shuffle else 3)
    ]
    metrics = runs[0]
    metrics["latency_ms"]["median"] = round(median([r["latency_ms"]["median"] for r in runs]), 2)
    metrics["train_pictures"], metrics["times"] = len(train), times
    metrics["model_mb"] = round(model.stat().st_size / 1e6, 2)
    return metrics


def demo_data() -> Path:
    from artdet.classify.demo import generate

    folder = CACHE / "classify-demo"
    if not (folder / ".complete").exists():
        generate(folder, photos=12, seed=0)
        (folder / ".complete").write_text("ok\n")
    return folder


def main() -> None:
    demo = demo_data()
    unseen = demo.parent / f"{demo.name}-unseen"
    rows, per_class_rows, data = [], [], {}
    # name, data, settings, unseen photos, whose features, shuffled-label run. The demo without the
    # geometric check shows what the check is for: the SVM alone names a work for every stranger.
    cases = [("demo", demo, {}, unseen, None, True), ("demo, no check", demo, {"verify": False}, unseen, "demo", False)]
    bccd = SHARED / "datasets" / "bccd"
    if bccd.is_dir():
        cases.append(("bccd", bccd, {"verify": False, "vocabulary_size": 128}, None, None, True))
    else:
        print(f"{bccd} is missing: the BCCD case is skipped")
    for name, folder, overrides, unseen_folder, features_of, shuffled in cases:
        m = run_case(name, folder, overrides, unseen_folder, features_of=features_of)
        data[name] = m
        s = {"balanced_accuracy": "-"}
        if shuffled:
            s = data[f"{name}_shuffled"] = run_case(name, folder, overrides, None, shuffle=True)
        check = m.get("geometric_check") or {}
        rows.append(
            [
                name,
                m["train_pictures"],
                m["test_pictures"],
                m["accuracy"],
                m["balanced_accuracy"],
                m["top3_accuracy"],
                m["baseline"]["accuracy"],
                m["baseline"]["balanced_accuracy"],
                s["balanced_accuracy"],
                m["unseen"]["rejection_rate"] if "unseen" in m else "-",
                (check.get("known_inliers") or {}).get("min", "-"),
                check.get("unseen_max_inliers", "-") if check else "-",
                m["latency_ms"]["median"],
                m["model_mb"],
            ]
        )
        for cls, v in m["per_class"].items():
            if name == "bccd":
                per_class_rows.append([cls, v["support"], v["recall"], v["precision"]])
    headers = [
        "data",
        "train",
        "test",
        "accuracy",
        "balanced acc.",
        "top-3",
        "majority acc.",
        "majority bal.",
        "shuffled labels bal.",
        "unseen called unknown",
        "known: fewest inliers",
        "unseen: most inliers",
        "ms / picture (median)",
        "model MB",
    ]
    tables = {"Classifier (test side; 'unknown' counts as wrong)": (headers, rows)}
    if per_class_rows:
        tables["BCCD crops, per class"] = (["class", "test crops", "recall", "precision"], per_class_rows)
    save("classify", ("demo test accuracy", float(data["demo"]["accuracy"]), "(fraction)"), tables, data)


if __name__ == "__main__":
    main()
