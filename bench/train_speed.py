"""Steady-state training speed of each preset on this CPU, and the input pipeline alone.

Training runs through `artdet train` (Model Garden's orbit loop); the speed is
read from its progress lines after the first loop (which includes tracing).
The baseline is the same training with TensorFlow's oneDNN kernels off
(`TF_ENABLE_ONEDNN_OPTS=0`, TensorFlow's default on CPUs without AVX-512
VNNI/BF16), measured in the same run. The input pipeline is timed alone by
iterating the same tf.data pipeline.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from common import CACHE, ROOT, generated_dataset, median, save

PRESETS = {
    "ssd_mobilenet": {"input_size": 320, "batch_size": 8, "train_steps": 100, "steps_per_loop": 20},
    "faster_rcnn": {"input_size": 320, "batch_size": 4, "train_steps": 40, "steps_per_loop": 10},
}
# (preset, oneDNN kernels on): the first row is the baseline.
RUNS = [("ssd_mobilenet", False), ("ssd_mobilenet", True), ("faster_rcnn", False), ("faster_rcnn", True)]


def records() -> tuple[Path, int]:
    """Training TFRecords of 1,000 generated pictures resized like the demo (longest side 320).

    The split has no val side (``val_fraction=0``), so the training set is the
    800 images of the earlier measurements.
    """
    from artdet.data.prepare import prepare_dataset

    out = CACHE / "records-1000-320"
    if not (out / ".complete").exists():
        shutil.rmtree(out, ignore_errors=True)
        prepare_dataset(generated_dataset(1000), out, max_side=320, val_fraction=0)
        (out / ".complete").write_text("ok\n")
    return out / "train.record", 4


def input_pipeline_rate(pipeline: Path, batches: int = 30) -> float:
    """Images/s of the training tf.data pipeline alone (decode, augment, anchor labels)."""
    from official.core import task_factory

    from artdet.train.pipeline_config import load_params

    params, _ = load_params(pipeline)
    task = task_factory.get_task(params.task)
    iterator = iter(task.build_inputs(params.task.train_data))
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * params.task.train_data.global_batch_size / (time.perf_counter() - start)


def train_rate(name: str, settings: dict, train: Path, classes: int, onednn: bool) -> dict:
    import os
    import subprocess
    import sys

    from artdet.train.pipeline_config import write_pipeline

    work = CACHE / "train_speed" / name
    shutil.rmtree(work, ignore_errors=True)
    model = {
        "name": name,
        "preset": name,
        "warmup_steps": 10,
        "checkpoint_every": settings["train_steps"],
        "bn_recalibration_batches": 0,
        **settings,
    }
    # No validation data: validation during training is off (its time was never part of the rate).
    write_pipeline(model, classes, [str(train)], [], work / "pipeline.yaml")
    log = subprocess.run(
        [
            sys.executable,
            "-m",
            "artdet",
            "train",
            "--pipeline",
            str(work / "pipeline.yaml"),
            "--model-dir",
            str(work / "train"),
        ],
        capture_output=True,
        text=True,
        # This checkout's package, whatever is installed in the interpreter.
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"},
    )
    if log.returncode != 0:
        raise RuntimeError(log.stderr[-3000:])
    # `artdet train` prints "progress | step N/M | X images/s | ..." after every loop.
    rates = [float(x) for x in re.findall(r"progress \| step \d+/\d+ \| ([\d.]+) images/s", log.stderr)]
    steady = rates[1:] if len(rates) > 1 else rates
    return {
        "preset": name,
        "onednn": onednn,
        "input_size": settings["input_size"],
        "batch_size": settings["batch_size"],
        "images_per_s_per_loop": rates,
        "train_images_per_s": round(median(steady), 2),
        "input_pipeline_images_per_s": round(input_pipeline_rate(work / "pipeline.yaml"), 1),
    }


def main() -> None:
    train, classes = records()
    results = [train_rate(name, PRESETS[name], train, classes, onednn) for name, onednn in RUNS]
    baseline = {r["preset"]: r["train_images_per_s"] for r in results if not r["onednn"]}
    headers = [
        "preset",
        "oneDNN kernels",
        "input",
        "batch",
        "training images/s (median of loops after the first)",
        "vs oneDNN off",
        "input pipeline alone (images/s)",
        "share of step time the input pipeline would need",
    ]
    rows = [
        [
            r["preset"],
            "on" if r["onednn"] else "off (baseline)",
            f"{r['input_size']}x{r['input_size']}",
            r["batch_size"],
            r["train_images_per_s"],
            f"{r['train_images_per_s'] / baseline[r['preset']]:.2f}x",
            r["input_pipeline_images_per_s"],
            f"{r['train_images_per_s'] / r['input_pipeline_images_per_s']:.0%}",
        ]
        for r in results
    ]
    ssd = next(r["train_images_per_s"] for r in results if r["preset"] == "ssd_mobilenet" and r["onednn"])
    save(
        "train_speed",
        ("ssd_mobilenet CPU training", ssd, "images/s"),
        {
            "Training speed on this CPU: one run per row, the median of its loops after the first "
            "(YOLOv8n measured beside us: `make bench-peers`)": (
                headers,
                rows,
            )
        },
        {"runs": results},
    )


if __name__ == "__main__":
    main()
