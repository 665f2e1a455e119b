"""Scores of an exported classifier on the test side, and on photos of works it does not know.

Accuracy alone flatters a classifier on an unbalanced set (BCCD is mostly red
cells: "always RBC" is right most of the time), so the metrics sit beside the
majority-class baseline, with balanced accuracy (the mean of per-class recalls)
and per-class precision and recall. "unknown" counts as a wrong answer for a
known work. Latency is measured from the decoded pixels to the answer, one
picture at a time, as the server sees it.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from artdet.classify.calibrate import unseen_half
from artdet.classify.dataset import load_rgb
from artdet.classify.features import FeatureSet, extract
from artdet.classify.model import REASONS, UNKNOWN, Classifier
from artdet.data.dataset import IMAGE_SUFFIXES


def _crop_box(item: dict) -> tuple[int, int, int, int] | None:
    return tuple(item["box"]) if item.get("box") else None


def scores_of(truth: list[str], predicted: list[str], ranked: list[list[str]], classes: list[str]) -> dict:
    """accuracy, balanced_accuracy, top3_accuracy and per-class precision, recall and support."""
    truth_a, pred_a = np.array(truth), np.array(predicted)
    per_class = {}
    recalls = []
    for c in classes:
        support = int((truth_a == c).sum())
        said = int((pred_a == c).sum())
        hit = int(((truth_a == c) & (pred_a == c)).sum())
        recall = hit / support if support else None
        if recall is not None:
            recalls.append(recall)
        per_class[c] = {
            "support": support,
            "precision": round(hit / said, 4) if said else None,
            "recall": round(recall, 4) if recall is not None else None,
        }
    return {
        "accuracy": round(float((truth_a == pred_a).mean()), 4) if len(truth) else None,
        "balanced_accuracy": round(float(np.mean(recalls)), 4) if recalls else None,
        "top3_accuracy": round(float(np.mean([t in r[:3] for t, r in zip(truth, ranked, strict=True)])), 4)
        if len(truth)
        else None,
        "per_class": per_class,
    }


def _confusion_png(truth: list[str], predicted: list[str], classes: list[str], out: Path) -> list[list[int]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*classes, UNKNOWN]
    matrix = np.zeros((len(classes), len(columns)), int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[classes.index(t), columns.index(p)] += 1
    size = max(4.0, 0.35 * len(columns) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(
                j, i, str(v), ha="center", va="center", fontsize=6, color="white" if v > matrix.max() / 2 else "black"
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test side)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return matrix.tolist()


def _worst_sheet(root: Path, rows: list[dict], items: dict[str, dict], out: Path, count: int = 12) -> None:
    """The wrong answers with the most confident score first (then the least sure right ones), as one JPEG."""
    from PIL import Image, ImageDraw

    ranked = sorted(rows, key=lambda r: (r["correct"], -r["score"] if not r["correct"] else r["score"]))[:count]
    tile = 160
    sheet = Image.new("RGB", (tile * 4, (tile + 30) * max(1, -(-len(ranked) // 4))), "white")
    draw = ImageDraw.Draw(sheet)
    for n, row in enumerate(ranked):
        item = items[row["id"]]
        picture = Image.fromarray(load_rgb(root / item["image"], _crop_box(item)))
        picture.thumbnail((tile, tile))
        x, y = (n % 4) * tile, (n // 4) * (tile + 30)
        sheet.paste(picture, (x, y))
        colour = (0, 120, 0) if row["correct"] else (200, 0, 0)
        draw.text((x + 2, y + tile + 2), f"true {row['true']}"[:26], fill=(0, 0, 0))
        draw.text((x + 2, y + tile + 15), f"said {row['predicted']} {row['score']:.2f}"[:26], fill=colour)
    sheet.save(out, quality=88)


def _inliers_of(top: list[dict], label: str | None = None) -> int:
    """Inliers the geometric check found for ``label`` (or the most for any class it checked)."""
    counts = [t.get("inliers", 0) for t in top if label is None or t["class"] == label]
    return int(max(counts, default=0))


def _answer_test(classifier: Classifier, root: Path, test: FeatureSet, items: dict, known: list[int]):
    """Each known test picture's answer (a row of predictions.csv) and its latency in ms."""
    classes = classifier.classes
    rows, latencies = [], []
    for i in known:
        item = items[str(test.ids[i])]
        pixels = load_rgb(root / item["image"], _crop_box(item))
        start = time.perf_counter()
        picture = extract(pixels, classifier.features)
        scores = classifier.scores([picture])[0]
        prediction = classifier.decide(picture, scores, top_k=len(classes))
        latencies.append((time.perf_counter() - start) * 1000)
        ranked = [t["class"] for t in prediction.top]
        truth = str(test.labels[i])
        rows.append(
            {
                "id": item["id"],
                "true": truth,
                "predicted": prediction.label,
                "score": prediction.score,
                "svm_top": ranked[0],
                "true_score": round(float(scores[classes.index(truth)]), 4),
                "correct": prediction.label == truth,
                "ranked": ranked,
                "inliers": _inliers_of(prediction.top, prediction.label),
                "reason": prediction.reason,
            }
        )
    return rows, latencies


def _by_reason(reasons: list[str | None]) -> dict[str, int]:
    """How many answers each part of the decision turned into ``unknown``."""
    return {r: sum(x == r for x in reasons) for r in REASONS}


def _decision(classifier: Classifier, rows: list[dict], metrics: dict) -> dict:
    """The operating point and what it cost on known test pictures, whatever parts of the decision are on.

    ``cost`` is the SVM's accuracy minus the answers' accuracy: the known pictures the geometric
    check, ``unknown_threshold`` or the novelty limit refused (or the check sent to another class).
    """
    novel = classifier.novelty
    return {
        "verify": classifier.settings["verify"],
        "min_inliers": classifier.settings["min_inliers"] if classifier.settings["verify"] else None,
        "unknown_threshold": classifier.settings["unknown_threshold"],
        "novelty": {"part": novel["part"], "limit": novel["limit"]} if novel else None,
        "cost": round(metrics["svm_accuracy"] - metrics["accuracy"], 4),
        "known_called_unknown": _by_reason([r["reason"] for r in rows]),
        "calibration": classifier.settings.get("calibration") or None,
    }


def _check_unseen_and_margin(classifier: Classifier, unseen: str | Path | None, rows: list[dict], metrics: dict):
    """The share of ``unseen`` photos called unknown, and the geometric check's inlier margin, into ``metrics``."""
    unseen_most = None
    calibration = classifier.settings.get("calibration") or {}
    if unseen:
        files = sorted(p for p in Path(unseen).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if calibration.get("unseen_pictures"):
            # Half of them fitted the decision: only the other half says what it rejects.
            files = [p for p in files if unseen_half(p, "evaluation")]
        predictions = [classifier(load_rgb(p), top_k=len(classifier.classes)) for p in files]
        answers = [p.label for p in predictions]
        metrics["unseen"] = {
            "folder": str(unseen),
            "half": "evaluation (the other half fitted the decision)" if calibration.get("unseen_pictures") else "all",
            "pictures": len(files),
            "called_unknown": int(sum(a == UNKNOWN for a in answers)),
            "rejection_rate": round(float(np.mean([a == UNKNOWN for a in answers])), 4) if files else None,
            "called_unknown_by": _by_reason([p.reason for p in predictions]),
        }
        if classifier.settings["verify"] and files:
            # The check's margin: strangers' best inlier counts stay below min_inliers, known works' above.
            most = [_inliers_of(p.top) for p in predictions]
            unseen_most = int(max(most))
            metrics["unseen"]["inliers"] = {"max": unseen_most, "median": float(np.median(most))}
    if classifier.settings["verify"]:
        hits = [r["inliers"] for r in rows if r["correct"]]
        metrics["geometric_check"] = {
            "min_inliers": classifier.settings["min_inliers"],
            "known_inliers": {"min": int(min(hits)), "median": float(np.median(hits))} if hits else None,
            "unseen_max_inliers": unseen_most,
        }


def evaluate(
    model_path: str | Path,
    root: str | Path,
    test: FeatureSet,
    items: dict[str, dict],
    train_labels: list[str],
    out_dir: str | Path,
    unseen: str | Path | None = None,
) -> dict:
    """Score the model on the test side (and ``unseen`` photos); write metrics, tables and pictures into ``out_dir``."""
    root, out = Path(root), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classifier = Classifier(model_path)
    classes = classifier.classes
    known = [i for i in range(len(test)) if str(test.labels[i]) in classes]
    if not known:
        raise ValueError(f"{root}: no test picture of a class the model knows; raise classify: test_fraction")
    rows, latencies = _answer_test(classifier, root, test, items, known)
    truth = [r["true"] for r in rows]
    predicted = [r["predicted"] for r in rows]
    metrics = scores_of(truth, predicted, [r["ranked"] for r in rows], classes)
    majority = Counter(train_labels).most_common(1)[0][0]
    baseline = scores_of(truth, [majority] * len(truth), [[majority]] * len(truth), classes)
    metrics.update(
        test_pictures=len(rows),
        classes=classes,
        svm_accuracy=round(float(np.mean([r["svm_top"] == r["true"] for r in rows])), 4),
        called_unknown=int(sum(p == UNKNOWN for p in predicted)),
        baseline={
            "rule": f"always '{majority}' (the most frequent training class)",
            "accuracy": baseline["accuracy"],
            "balanced_accuracy": baseline["balanced_accuracy"],
            "top3_accuracy": baseline["top3_accuracy"],
        },
        latency_ms={
            "median": round(float(np.median(latencies)), 2),
            "p90": round(float(np.percentile(latencies, 90)), 2),
            "what": "decoded pixels to answer (features, SVM, geometric check), one picture at a time",
        },
        settings=classifier.settings,
    )
    metrics["decision"] = _decision(classifier, rows, metrics)
    _check_unseen_and_margin(classifier, unseen, rows, metrics)
    metrics["confusion_matrix"] = _confusion_png(truth, predicted, classes, out / "confusion_matrix.png")
    _worst_sheet(root, rows, items, out / "worst_examples.jpg")
    with open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "true", "predicted", "score", "true_score", "svm_top", "correct"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in writer.fieldnames} for r in rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics
