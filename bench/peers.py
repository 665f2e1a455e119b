"""Our recipe against Ultralytics YOLOv8n, both from scratch, same data, same budget, same machine, same run.

For each dataset the workflow's data stages make the split and the resized
images (longest side 320) once; both detectors train on its train side within
the same wall-clock budget, one after the other, and are scored by the same
pycocotools code on the same test images:

- ``artdet``: the shipped config.yaml's ``ssd_mobilenet`` entry with
  ``time_budget`` set, through a real ``snakemake`` run (SavedModel): bench/accuracy.py's
  run of the set when it trained that recipe at the same commit (``--fresh``: train it here);
- ``YOLOv8n``: Ultralytics' ``yolov8n.yaml`` (no pretrained weights) at 320,
  batch 8, its ``time`` argument set to the budget, in its own virtualenv
  (``bench/peers_yolo.py``); its detections are scored here.

Timed the same way: training from the process start (Snakemake starting
``artdet train``; this script launching the peer) to the final weights written,
so imports, set-up and any final validation count against the budget; latency of
one call on the already decoded test image, median over the test set. Both keep
the same boxes: YOLO's confidence floor, NMS IoU and detection cap are read from
our model's detection generator (pipeline.yaml).

Run ``make bench-peers`` (builds the peers' virtualenv, then this), or
``python bench/peers.py --peer-python PATH [--budget 12m] [--datasets raccoon bccd]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from accuracy import SPLIT_TABLES, budget_seconds, collect, run_workflow, shipped_recipe
from common import CACHE, ROOT, SHARED, commit, save


def _seconds(budget: str) -> float:
    from artdet.train.schedule import parse_duration

    return parse_duration(budget)


def yolo_dataset(work: Path) -> tuple[Path, Path, dict[str, str], list[str], int]:
    """The workflow's split and resized images as an Ultralytics dataset under ``work/yolo``.

    Returns data.yaml, the list of test images, flat file name -> the workflow's
    file name, the class names in label-map order and the number of train images.
    """
    from artdet.data.label_map import read_label_map

    data = work / "results" / "data"
    labels = read_label_map(data / "label_map.pbtxt")
    names = [labels[k] for k in sorted(labels)]
    index = {name: i for i, name in enumerate(names)}
    images = {
        path.relative_to(shard).as_posix(): path
        for shard in (data / "shards").glob("*/images")
        for path in shard.rglob("*")
        if path.is_file()
    }
    boxes: dict[str, list[str]] = {}
    for side in ("train", "val", "test"):
        with open(data / f"{side}_labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                w, h = float(row["width"]), float(row["height"])
                x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
                boxes.setdefault(row["filename"], []).append(
                    f"{index[row['class']]} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                    f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
                )
    root = work / "yolo"
    shutil.rmtree(root, ignore_errors=True)
    flat_names, test, train_count = {}, [], 0
    with open(data / "split.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            name, side = row["filename"], row["split"]
            flat = name.replace("/", "__")
            flat_names[flat] = name
            (root / "images" / side).mkdir(parents=True, exist_ok=True)
            (root / "labels" / side).mkdir(parents=True, exist_ok=True)
            (root / "images" / side / flat).symlink_to(images[name].resolve())
            (root / "labels" / side / flat).with_suffix(".txt").write_text("\n".join(boxes.get(name, [])) + "\n")
            if side == "test":
                test.append(str(root / "images" / side / flat))
            train_count += side == "train"
    spec = {"path": str(root), "train": "images/train", "val": "images/val", "test": "images/test", "names": names}
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    (root / "test.txt").write_text("\n".join(test) + "\n")
    return root / "data.yaml", root / "test.txt", flat_names, names, train_count


def detection_settings(pipeline_yaml: Path) -> dict:
    """Our model's confidence floor, NMS IoU and detection cap, from its Model Garden detection generator."""

    def find(node):
        if isinstance(node, dict):
            if "detection_generator" in node:
                return node["detection_generator"]
            for value in node.values():
                if (found := find(value)) is not None:
                    return found
        return None

    generator = find(yaml.safe_load(pipeline_yaml.read_text()))
    if generator is None:
        raise SystemExit(f"{pipeline_yaml}: no detection_generator, cannot match YOLO's settings to ours")
    return {
        "conf": generator["pre_nms_score_threshold"],
        "iou": generator["nms_iou_threshold"],
        "max_det": generator["max_num_detections"],
    }


def score_yolo(work: Path, result: dict, flat_names: dict[str, str], names: list[str]) -> dict:
    """pycocotools on YOLO's detections, against the same test images and boxes as ours."""
    from artdet.data.label_map import read_label_map
    from artdet.evaluate.inference import load_test_images
    from artdet.evaluate.metrics import coco_metrics, ground_truth_of, predictions_of

    labels = read_label_map(work / "results" / "data" / "label_map.pbtxt")
    ids = {name: ident for ident, name in labels.items()}
    images = load_test_images(sorted((work / "results" / "data" / "records").glob("test-*.tfrecord")))
    by_name = {flat_names[row["image"]]: row["detections"] for row in result["images"]}
    found = [[(ids[names[c]], s, tuple(b)) for c, s, b in by_name[im["name"]]] for im in images]
    metrics, _ = coco_metrics(ground_truth_of(images), predictions_of(found), labels)
    return metrics


def accuracy_run(dataset: str, budget: str) -> Path | None:
    """bench/accuracy.py's run of ``dataset`` when it trained this recipe at this commit, else None.

    Its recipe trained alone on the machine (the training job holds every core), from the
    process start to the final model, as here: training it again would measure the same thing.
    """
    work = CACHE / "accuracy" / dataset
    stamp = work / "commit.txt"
    if not stamp.exists() or stamp.read_text().strip() != commit() or commit().endswith("+dirty"):
        return None
    config = yaml.safe_load((work / "config.yaml").read_text())
    recipe = config.get("models", {}).get("recipe")
    done = all((work / target).exists() for target in SPLIT_TABLES)
    ready = (work / "results" / "recipe" / "evaluation" / "saved_model" / "metrics.json").exists()
    return work if recipe == shipped_recipe(budget) and done and ready else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", required=True, help="the Python of the virtualenv with ultralytics")
    parser.add_argument("--budget", default="12m", help="training budget of each detector (default 12m)")
    parser.add_argument("--datasets", nargs="+", default=["raccoon", "bccd"], choices=["raccoon", "bccd"])
    parser.add_argument(
        "--fresh", action="store_true", help="train artdet's recipe here even when bench/accuracy.py's run can be used"
    )
    args = parser.parse_args()
    budget = _seconds(args.budget)

    rows, data = [], {}
    for dataset in args.datasets:
        folder = SHARED / "datasets" / dataset
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: the shared datasets are needed for this benchmark")
        recipe = {"recipe": shipped_recipe(args.budget)}
        work = None if args.fresh else accuracy_run(dataset, args.budget)
        if work is not None:
            print(f"{dataset}: artdet's side from bench/accuracy.py's run at this commit ({work})", flush=True)
            ours = collect(work, recipe, {"recipe": ["recipe"]})["recipe"]
        else:
            work = CACHE / "accuracy" / f"peers-{dataset}"
            ours = run_workflow(
                work.name,
                folder,
                recipe,
                {"recipe": ("saved_model",)},
                published_split=dataset == "bccd",
                extra_targets=SPLIT_TABLES,
            )["recipe"]
        data_yaml, test_list, flat_names, names, train_count = yolo_dataset(work)
        same = detection_settings(work / "results" / "recipe" / "pipeline.yaml")
        launched = time.time()
        peer = subprocess.run(
            [
                args.peer_python,
                str(Path(__file__).with_name("peers_yolo.py")),
                str(data_yaml),
                str(test_list),
                str(work / "yolo-run"),
                "--budget-seconds",
                str(budget),
                "--train-images",
                str(train_count),
                "--conf",
                str(same["conf"]),
                "--iou",
                str(same["iou"]),
                "--max-det",
                str(same["max_det"]),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
        )
        if peer.returncode != 0:
            raise SystemExit(f"{dataset}: YOLOv8n failed:\n{peer.stderr[-3000:]}")
        yolo = json.loads(peer.stdout.strip().splitlines()[-1])
        yolo["train_seconds"] = round(yolo["weights_written_at"] - launched, 1)
        yolo_metrics = score_yolo(work, yolo, flat_names, names)

        saved = ours["forms"]["saved_model"]
        train = ours["train"]
        batch = shipped_recipe(args.budget)["batch_size"]
        ours_rate = train["steps"] * batch / train["seconds"]
        entry = {
            "artdet": {
                "AP50": saved["AP50"],
                "AP": saved["AP"],
                "AR100": saved["AR100"],
                "train_seconds": budget_seconds(work, "recipe"),
                "train_loop_seconds": train["seconds"],
                "steps": train["steps"],
                "train_images_per_s": round(ours_rate, 2),
                "latency_ms": saved["latency_ms"]["median"],
            },
            "yolov8n": {
                "AP50": yolo_metrics["AP50"],
                "AP": yolo_metrics["AP"],
                "AR100": yolo_metrics["AR100"],
                "train_seconds": yolo["train_seconds"],
                "train_call_seconds": yolo["train_call_seconds"],
                "epochs": yolo["epochs"],
                "train_images_per_s": yolo["train_images_per_s"],
                "latency_ms": yolo["latency_ms"],
            },
            "budget_seconds": budget,
            "same_settings": same,
            "test_images": saved["num_images"],
            "test_boxes": saved["num_boxes"],
        }
        data[dataset] = entry
        a, y = entry["artdet"], entry["yolov8n"]
        for label, value in (("artdet ssd_mobilenet", a), ("YOLOv8n (Ultralytics)", y)):
            rows.append(
                [
                    dataset,
                    label,
                    f"{value['AP50']:.3f}",
                    f"{value['AP']:.3f}",
                    f"{value['train_seconds'] / 60:.1f}",
                    f"{value['train_images_per_s']:.1f}",
                    f"{value['latency_ms']:.1f}",
                ]
            )
        rows.append(
            [
                dataset,
                "ratio artdet / YOLOv8n",
                f"{a['AP50'] / y['AP50']:.2f}x" if y["AP50"] else "-",
                f"{a['AP'] / y['AP']:.2f}x" if y["AP"] else "-",
                "",
                f"{a['train_images_per_s'] / y['train_images_per_s']:.2f}x",
                f"{a['latency_ms'] / y['latency_ms']:.2f}x",
            ]
        )
        print("\n".join(" | ".join(r) for r in rows[-3:]), flush=True)

    headers = [
        "dataset",
        "detector",
        "AP50",
        "AP",
        "train min (process start to weights)",
        "train images/s",
        "ms per decoded image (batch 1)",
    ]
    first = data[args.datasets[0]]
    ratio = first["artdet"]["AP50"] / first["yolov8n"]["AP50"] if first["yolov8n"]["AP50"] else 0.0
    save(
        "peers",
        (f"{args.datasets[0]} AP50, artdet / YOLOv8n", ratio, "x"),
        {
            f"From scratch at 320 within {args.budget} each, on this {os.cpu_count()}-core CPU, one after the other "
            "in one run; the same confidence floor, NMS IoU and cap (ours); pycocotools on the same test images; "
            "one run each": (headers, rows)
        },
        {"budget": args.budget, "datasets": data, "python": sys.version.split()[0], "root": str(ROOT)},
    )


if __name__ == "__main__":
    main()
