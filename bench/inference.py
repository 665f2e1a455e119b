"""Inference latency and throughput of the exported SavedModel, and `artdet detect` end to end.

The model is the ssd_mobilenet preset at 320x320 trained briefly by
train_speed.py (weights do not change the cost); it is trained here if absent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import CACHE, median, percentile, save


def exported_model() -> Path:
    out = CACHE / "train_speed" / "ssd_mobilenet" / "saved_model"
    if (out / "saved_model.pb").exists():
        return out
    work = out.parent
    if not (work / "train" / "train_summary.json").exists():
        import train_speed

        train, classes = train_speed.records()
        train_speed.train_rate("ssd_mobilenet", train_speed.PRESETS["ssd_mobilenet"], train, classes, onednn=True)
    label_map = CACHE / "records-1000-320" / "label_map.pbtxt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "artdet",
            "export",
            "--pipeline",
            str(work / "pipeline.yaml"),
            "--model-dir",
            str(work / "train"),
            "--label-map",
            str(label_map),
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def latency(detector, images: list[np.ndarray]) -> list[float]:
    """Seconds per image at batch 1, after three warm-up calls."""
    for image in images[:3]:
        detector(image)
    seconds = []
    for image in images:
        start = time.perf_counter()
        detector(image)
        seconds.append(time.perf_counter() - start)
    return seconds


def box_classifier() -> Path:
    """A box classifier trained on crops of 60 generated photos (1200x900, the demo's classes), made once."""
    from artdet.classify.boxes import train_box_classifier
    from artdet.classify.dataset import scan_shard
    from artdet.classify.features import FeatureSettings, write_shard
    from artdet.classify.model import settings_from
    from artdet.data.demo import generate

    out = CACHE / "box-classifier"
    if (out / "model.joblib").exists():
        return out / "model.joblib"
    photos = CACHE / "box-classifier-photos"
    generate(photos, count=60, seed=7, width=1200, height=900)
    scan = scan_shard(photos, test_fraction=0.01)
    for item in scan.items:
        item.side = "train"
    out.mkdir(parents=True, exist_ok=True)
    write_shard(
        scan,
        photos,
        FeatureSettings(),
        out / "features.npz",
        out / "features.json",
        {"boxes_per_side": {"train": len(scan.items), "val": 0, "test": 0}},
    )
    settings = {**settings_from({"verify": False}), "crop_padding": 0.1}
    train_box_classifier([out / "features.npz"], [out / "features.json"], out, settings)
    return out / "model.joblib"


def two_stage_cost(model: Path) -> tuple[list[list], dict]:
    """ms per photo of the detector alone, of naming 1, 10 and 30 boxes, and of both, on 1200x900 photos.

    The boxes are the photos' labelled paintings, repeated to the count (the naming cost depends on
    the box count and size, not on where the boxes are); medians of 20 photos each.
    """
    from artdet.classify.boxes import BoxNamer
    from artdet.classify.dataset import load_rgb
    from artdet.data.voc import read_voc
    from artdet.deploy.runtime import Detector

    namer = BoxNamer(box_classifier())
    photos = sorted((CACHE / "box-classifier-photos").glob("*.jpg"))[:20]
    images = [load_rgb(p) for p in photos]
    boxes = [[(b.xmin, b.ymin, b.xmax, b.ymax) for b in read_voc(p.with_suffix(".xml")).boxes] for p in photos]
    detector_ms = median(latency(Detector(model, name_boxes=False), images)) * 1000
    rows, data = [], {"detector_ms": detector_ms}
    for count in (1, 10, 30):
        seconds = []
        for image, own in zip(images, boxes, strict=True):
            chosen = (own * count)[:count]
            start = time.perf_counter()
            namer.name(image, chosen, [0.9] * count)
            seconds.append(time.perf_counter() - start)
        naming = median(seconds) * 1000
        data[f"naming_ms_{count}"] = naming
        total = detector_ms + naming
        rows.append([count, round(detector_ms, 1), round(naming, 1), round(total, 1), round(total / detector_ms, 2)])
    return rows, data


# Starts one command and prints its wall-clock seconds, peak memory (MB) and exit status. The
# benchmark runs it as a small process of its own: Linux carries a process's peak memory across
# exec, so a child forked straight from this one (TensorFlow loaded, ~2 GB) would report ours.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps([time.perf_counter() - start, usage.ru_maxrss / 1024, status]))
"""


def startup(forms: dict[str, tuple[Path, str]], photo: Path, repeats: int = 3) -> tuple[list[list], dict]:
    """`artdet detect MODEL photo` as a new process: seconds from its start to its first (only) photo's
    detections written, and its peak memory (the child's ru_maxrss, taken by ``LAUNCHER``), per form;
    medians of ``repeats``, the forms in turns so that each sees the same machine. ``forms``: name ->
    (model, TFLite runtime).
    """
    import os
    import tempfile

    seconds: dict[str, list[float]] = {name: [] for name in forms}
    memory: dict[str, list[float]] = {name: [] for name in forms}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            for name, (model, runtime) in forms.items():
                env = {**os.environ, "ARTDET_TFLITE_RUNTIME": runtime}
                command = [sys.executable, "-m", "artdet", "detect", str(model), str(photo), "--out", out, "--no-save"]
                launched = subprocess.run(
                    [sys.executable, "-c", LAUNCHER, *command], env=env, capture_output=True, text=True, check=True
                )
                took, peak, status = json.loads(launched.stdout)
                if status != 0:
                    raise SystemExit(f"artdet detect {model} failed (status {status})")
                seconds[name].append(took)
                memory[name].append(peak)
    rows = [[name, round(median(seconds[name]), 2), round(median(memory[name]))] for name in forms]
    return rows, {"seconds": seconds, "peak_mb": memory}


def preprocessing_share(path: Path, images: list[np.ndarray], repeats: int = 40) -> dict:
    """Median ms of the int8 interpreter call alone and of Detector end to end (decoded image in, boxes out)."""
    from artdet.deploy.runtime import Detector, tflite_interpreter
    from artdet.deploy.tflite import preprocess

    size = int(json.loads((path.parent / "artdet_model.json").read_text())["input_size"])
    runner = tflite_interpreter(path).get_signature_runner("serving_default")
    detector = Detector(path)
    batches = [preprocess(image, size)[0] for image in images[:repeats]]
    for batch, image in zip(batches[:3], images, strict=False):
        runner(inputs=batch)
        detector(image)
    interpreter, end_to_end = [], []
    for batch, image in zip(batches, images, strict=False):  # in turns, on the same images
        start = time.perf_counter()
        runner(inputs=batch)
        interpreter.append(time.perf_counter() - start)
        start = time.perf_counter()
        detector(image)
        end_to_end.append(time.perf_counter() - start)
    return {"interpreter_ms": median(interpreter) * 1000, "detector_ms": median(end_to_end) * 1000}


def main() -> None:
    from PIL import Image

    import train_speed
    from artdet.deploy.runtime import Detector
    from artdet.deploy.tflite import calibration_images, export_tflite

    train_speed.records()  # the cached TFRecords and resized images (built once)
    model = exported_model()
    records = CACHE / "records-1000-320"
    paths = sorted(records.glob("shards/*/images/*.jpg"))[:64]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    detector = Detector(model)
    latencies = latency(detector, images[:40])
    variants = {}
    work = model.parent
    calibration = calibration_images([records / "train.record"], 100)
    for precision in ("float32", "float16", "int8"):
        path = export_tflite(
            work / "pipeline.yaml",
            work / "train",
            records / "label_map.pbtxt",
            CACHE / "tflite" / precision / "model.tflite",
            precision,
            calibration if precision == "int8" else None,
        )
        seconds = latency(Detector(path), images[:40])
        variants[precision] = {"size_mb": path.stat().st_size / 1e6, "latencies": seconds}
    batch = images[:8]
    detector.detect_batch(batch)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        detector.detect_batch(batch)
        runs.append(time.perf_counter() - start)
    batch8 = len(batch) / median(runs)

    folder = CACHE / "detect-folder"
    folder.mkdir(exist_ok=True)
    for path in paths:
        target = folder / path.name
        if target.is_symlink() or target.exists():
            target.unlink()  # the cache layout may have moved since the link was made
        target.symlink_to(path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "artdet",
            "detect",
            str(model),
            str(folder),
            "--out",
            str(CACHE / "detect-out"),
            "--batch-size",
            "8",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    detect_rate = float(re.search(r"([\d.]+) images/s", result.stdout).group(1))
    stages = re.search(r"decode ([\d.]+) ms, inference ([\d.]+) ms, drawing ([\d.]+) ms", result.stdout)

    two_stage_rows, two_stage = two_stage_cost(model)
    tflite = {name: CACHE / "tflite" / name / "model.tflite" for name in variants}
    startup_forms = {"SavedModel (TensorFlow)": (model, "litert")}
    for name, path in tflite.items():
        startup_forms[f"TFLite {name}, LiteRT"] = (path, "litert")
        startup_forms[f"TFLite {name}, TensorFlow's interpreter"] = (path, "tensorflow")
    startup_rows, startup_data = startup(startup_forms, paths[0])
    share = preprocessing_share(tflite["int8"], images)

    p50, p90 = median(latencies) * 1000, percentile(latencies, 90) * 1000
    size_mb = sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) / 1e6
    rows = [
        [f"SavedModel ({size_mb:.1f} MB), batch 1", round(p50, 1), round(p90, 1), round(1000 / p50, 1)],
        *[
            [
                f"TFLite {name} ({v['size_mb']:.1f} MB), batch 1",
                round(median(v["latencies"]) * 1000, 1),
                round(percentile(v["latencies"], 90) * 1000, 1),
                round(1 / median(v["latencies"]), 1),
            ]
            for name, v in variants.items()
        ],
        ["SavedModel, batch 8", "", "", round(batch8, 1)],
        [
            f"artdet detect, folder of {len(paths)} (decode {stages.group(1)} ms, model {stages.group(2)} ms, "
            f"drawing {stages.group(3)} ms per image)",
            "",
            "",
            detect_rate,
        ],
    ]
    save(
        "inference",
        ("SavedModel latency, batch 1, 320x320", p50, "ms"),
        {
            "Inference on this CPU, ssd_mobilenet 320x320: median and p90 of 40 calls per form, batch 8 the median "
            "of 5 calls, `artdet detect` one run (YOLOv8n measured beside us: `make bench-peers`)": (
                ["what", "median ms", "p90 ms", "images/s"],
                rows,
            ),
            "Two-stage models on 1200x900 photos: the SavedModel detector alone, the box classifier naming N "
            "boxes cut from the photo (SIFT per crop, one SVM call per photo), both; medians of 20 photos": (
                ["boxes", "detector ms", "naming ms", "two-stage ms", "x detector alone"],
                two_stage_rows,
            ),
            "`artdet detect MODEL photo.jpg` as a new process: start to the photo's detections written, and the "
            "process's peak memory; medians of 3 runs, the forms in turns": (
                ["form", "seconds", "peak MB"],
                startup_rows,
            ),
            "TFLite int8 on 320-pixel photos: the interpreter call alone against Detector end to end (decoded image "
            "in, boxes out: pre-processing, the call, post-processing); medians of 40, in turns": (
                ["interpreter ms", "Detector ms", "ratio"],
                [
                    [
                        round(share["interpreter_ms"], 2),
                        round(share["detector_ms"], 2),
                        round(share["detector_ms"] / share["interpreter_ms"], 2),
                    ]
                ],
            ),
        },
        {
            "latencies_ms": [round(x * 1000, 2) for x in latencies],
            "batch8_images_per_s": batch8,
            "detect_images_per_s": detect_rate,
            "two_stage": two_stage,
            "startup": startup_data,
            "preprocessing": share,
            "tflite": {
                name: {"size_mb": v["size_mb"], "latencies_ms": [round(x * 1000, 2) for x in v["latencies"]]}
                for name, v in variants.items()
            },
        },
    )


if __name__ == "__main__":
    main()
