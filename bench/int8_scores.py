"""What keeping the class-score head float buys an int8 TFLite file, against fully integer scores.

For each seed a real `snakemake` run generates the look-alike demo variant
(the test suite's export check: 96 images at 320x240, a tiny ssd_mobilenet
at 192 trained for a few steps, young enough to hesitate between classes),
exports the SavedModel and the workflow's int8 file (score head float), and
evaluates both. The same checkpoint is then exported once more with the
score head quantised too (``float_scores=False``, the export before this
option existed) and evaluated against the same SavedModel detections.

Per seed and file: AP50 and AP differences from the SavedModel, the share of
distinct scores among the detections scoring at least 0.1 (ties break AP's
ranking), the median latency per test image at batch 1 of the two int8
files measured in turns (5 rounds), and the file size.

    python bench/int8_scores.py                 # seeds 0 1 2, about 5 minutes each on 2 cores
    python bench/int8_scores.py --seeds 3 --steps 600
    python bench/int8_scores.py --reuse         # the table again from the cached runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from common import CACHE, ROOT, median, save

MODEL = {
    "preset": "ssd_mobilenet",
    "input_size": 192,
    "batch_size": 8,
    "learning_rate": 0.004,
    "warmup_steps": 30,
    "steps_per_loop": 50,
    "checkpoint_every": 100,
    "validate_every": 0,
}


def workflow(seed: int, steps: int, reuse: bool = False) -> Path:
    """A fresh look-alike run for ``seed`` (``reuse``: the cached one, if complete); returns its results folder."""
    from artdet.data.demo import generate

    work = CACHE / "int8_scores" / f"seed{seed}-steps{steps}"
    if reuse and (work / "results" / "tiny" / "evaluation" / "tflite_int8_integer_scores" / "metrics.json").exists():
        return work / "results"
    shutil.rmtree(work, ignore_errors=True)
    generate(work / "photos", count=96, seed=seed, width=320, height=240, variant="lookalike")
    config = {
        "dataset": "photos",
        "classes": [],
        "resize": {"max_side": 192, "max_bytes": 200000},
        "split": {"test_fraction": 0.2, "val_fraction": 0.2, "seed": 0},
        "records": {"shards": 1},
        "export": {"tflite": ["int8"]},
        "train_models": ["tiny"],
        "models": {"tiny": {**MODEL, "train_steps": steps}},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "results/tiny/evaluation/tflite_int8/metrics.json"]
    command += ["-s", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(work / "config.yaml")]
    command += ["--cores", "all", "--resources", "gpu=1"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(work / "snakemake.log", "w") as log:
        if subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            raise SystemExit(f"seed {seed}: snakemake failed, see {work / 'snakemake.log'}")
    return work / "results"


def integer_scores_export(results: Path) -> Path:
    """The workflow's int8 file again, from the same checkpoint, with the score head quantised."""
    from artdet.deploy.tflite import calibration_images, export_tflite
    from artdet.evaluate.evaluator import evaluate_model

    out = results / "tiny" / "tflite_int8_integer_scores" / "model.tflite"
    records = sorted((results / "data" / "records").glob("train-*.tfrecord"))
    export_tflite(
        results / "tiny" / "pipeline.yaml",
        results / "tiny" / "train",
        results / "data" / "label_map.pbtxt",
        out,
        "int8",
        calibration_images(records),
        float_scores=False,
    )
    evaluation = results / "tiny" / "evaluation" / "tflite_int8_integer_scores"
    evaluate_model(
        out,
        sorted((results / "data" / "records").glob("test-*.tfrecord")),
        evaluation,
        reference=results / "tiny" / "evaluation" / "saved_model" / "detections.json",
    )
    return evaluation


def latencies(files: dict[str, Path], records: list[Path], rounds: int = 5) -> dict[str, float]:
    """Median ms per test image at batch 1 for each file, the files taking turns image by image.

    The workflow's own latency figures come from evaluations that may run
    side by side; here the files share the machine alike.
    """
    from artdet.deploy.runtime import Detector
    from artdet.evaluate.inference import load_test_images

    images = [im["pixels"] for im in load_test_images(records)]
    detectors = {name: Detector(path) for name, path in files.items()}
    seconds: dict[str, list[float]] = {name: [] for name in files}
    for detector in detectors.values():
        for image in images[:3]:
            detector(image)  # warm-up
    for _ in range(rounds):
        for image in images:
            for name, detector in detectors.items():
                start = time.perf_counter()
                detector(image)
                seconds[name].append(time.perf_counter() - start)
    return {name: round(median(s) * 1000, 2) for name, s in seconds.items()}


def summary(evaluation: Path) -> dict:
    from artdet.evaluate.metrics import FOUND_MIN_SCORE

    metrics = json.loads((evaluation / "metrics.json").read_text())
    detections = json.loads((evaluation / "detections.json").read_text())
    scores = [d[1] for r in detections for d in r["detections"] if d[1] >= FOUND_MIN_SCORE]
    versus = metrics.get("versus_reference") or {}
    return {
        "AP50": metrics["AP50"],
        "AP": metrics["AP"],
        "dAP50": (versus.get("difference") or {}).get("AP50"),
        "dAP": (versus.get("difference") or {}).get("AP"),
        "lossy": versus.get("lossy"),
        "differs": versus.get("differs"),
        "detections": len(scores),
        "distinct_scores": len(set(scores)) / max(1, len(scores)),
        "size_mb": metrics["size_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo data seeds (default 0 1 2)")
    parser.add_argument("--steps", type=int, default=160, help="training steps (default 160: still hesitating)")
    parser.add_argument("--reuse", action="store_true", help="reuse complete runs in bench/.cache/int8_scores")
    args = parser.parse_args()

    files = {"saved_model": "SavedModel", "tflite_int8": "int8, float scores", "integer": "int8, integer scores"}
    rows, data = [], {}
    for seed in args.seeds:
        start = time.perf_counter()
        results = workflow(seed, args.steps, args.reuse)
        evaluation = results / "tiny" / "evaluation"
        integer = evaluation / "tflite_int8_integer_scores"
        if not (integer / "metrics.json").exists():
            integer = integer_scores_export(results)
        found = {
            "saved_model": summary(evaluation / "saved_model"),
            "tflite_int8": summary(evaluation / "tflite_int8"),
            "integer": summary(integer),
        }
        int8_files = {
            "tflite_int8": results / "tiny" / "tflite_int8" / "model.tflite",
            "integer": results / "tiny" / "tflite_int8_integer_scores" / "model.tflite",
        }
        for key, ms in latencies(int8_files, sorted((results / "data" / "records").glob("test-*.tfrecord"))).items():
            found[key]["latency_ms"] = ms
        found["saved_model"]["latency_ms"] = None
        data[f"seed {seed}"] = found
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
        for key, name in files.items():
            s = found[key]
            rows.append(
                [
                    seed,
                    name,
                    f"{s['AP50']:.3f}",
                    f"{s['AP']:.3f}",
                    "" if s["dAP50"] is None else f"{s['dAP50']:+.3f}",
                    "" if s["dAP"] is None else f"{s['dAP']:+.3f}",
                    "" if s["lossy"] is None else "LOSSY" if s["lossy"] else "DIFFERS" if s["differs"] else "ok",
                    f"{s['distinct_scores']:.2f}",
                    "" if s["latency_ms"] is None else s["latency_ms"],
                    f"{s['size_mb']:.2f}",
                ]
            )

    def worst(key: str) -> float:
        return max(max(abs(d[key]["dAP50"]), abs(d[key]["dAP"])) for d in data.values())

    headers = ["seed", "file", "AP50", "AP", "dAP50", "dAP", "vs SavedModel", "distinct >= 0.1", "ms/image", "MB"]
    largest = {"float_scores": worst("tflite_int8"), "integer_scores": worst("integer")}
    ratio = largest["integer_scores"] / max(largest["float_scores"], 1e-4)
    title = (
        f"The look-alike demo variant, {args.steps} training steps, one run per seed; the largest change in AP50 "
        f"or AP against the SavedModel was {largest['integer_scores']:.3f} with integer scores and "
        f"{largest['float_scores']:.3f} with the float head (LOSSY: loses more than the export tolerance in "
        "AP50 or AP, DIFFERS: gains as much, a gain can hide a loss); ms/image: medians of "
        "5 rounds over the test images, the two int8 files in turns"
    )
    save(
        "int8_scores",
        ("largest AP change of int8, integer / float score head", ratio, "x"),
        {title: (headers, rows)},
        {"steps": args.steps, "seeds": args.seeds, "results": data, "largest_difference": largest},
    )


if __name__ == "__main__":
    main()
