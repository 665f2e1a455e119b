"""Inference latency and throughput of the exported SavedModel, and `artdet detect` end to end.

The model is the ssd_mobilenet preset at 320x320 trained briefly by
train_speed.py (weights do not change the cost); it is trained here if absent.
"""

from __future__ import annotations

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
        },
        {
            "latencies_ms": [round(x * 1000, 2) for x in latencies],
            "batch8_images_per_s": batch8,
            "detect_images_per_s": detect_rate,
            "two_stage": two_stage,
            "tflite": {
                name: {"size_mb": v["size_mb"], "latencies_ms": [round(x * 1000, 2) for x in v["latencies"]]}
                for name, v in variants.items()
            },
        },
    )


if __name__ == "__main__":
    main()
