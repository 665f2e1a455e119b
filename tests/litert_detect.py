"""Detections of an exported .tflite file by the standalone LiteRT interpreter, as a phone app runs it.

Usage: ``python litert_detect.py MODEL.tflite IMAGE...``; prints one JSON list of detections per
image. Only NumPy, OpenCV, Pillow and ``ai-edge-litert`` are imported, never TensorFlow: this is
the file, the label map and ``artdet_model.json`` alone, read as docs/android.md describes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


def labels(path: Path) -> dict[int, str]:
    """id -> name from a label_map.pbtxt (what an app turns into labels.txt)."""
    items = re.findall(r"item\s*\{(.*?)\}", path.read_text(), re.S)
    found = {}
    for item in items:
        ident = re.search(r"\bid:\s*(\d+)", item)
        name = re.search(r"\bname:\s*['\"]([^'\"]*)['\"]", item)
        found[int(ident.group(1))] = name.group(1)
    return found


def detect(model: Path, images: list[Path]) -> list[list[dict]]:
    info = json.loads((model.parent / "artdet_model.json").read_text())
    names = labels(model.parent / "label_map.pbtxt")
    size, offset, per_box = int(info["input_size"]), int(info["class_offset"]), int(info["classes_per_detection"])
    mean = np.asarray(info["preprocessing"]["mean_rgb"], np.float32)
    std = np.asarray(info["preprocessing"]["stddev_rgb"], np.float32)
    runner = Interpreter(model_path=str(model), num_threads=2).get_signature_runner("serving_default")
    results = []
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        scale = min(size / height, size / width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        resized = cv2.resize(image.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        batch = np.zeros((1, size, size, 3), np.float32)
        batch[0, :new_h, :new_w] = (resized - mean) / std
        out = runner(inputs=batch)
        count = min(int(out["num_detections"][0]) * per_box, out["detection_scores"].shape[1])
        scale_y, scale_x = new_h / height, new_w / width
        found = []
        for i in range(count):
            ymin, xmin, ymax, xmax = (float(v) for v in out["detection_boxes"][0, i])
            class_id = int(out["detection_classes"][0, i]) + offset
            box = [
                min(max(xmin / scale_x, 0), width),
                min(max(ymin / scale_y, 0), height),
                min(max(xmax / scale_x, 0), width),
                min(max(ymax / scale_y, 0), height),
            ]
            found.append(
                {"class": names.get(class_id, str(class_id)), "score": float(out["detection_scores"][0, i]), "box": box}
            )
        results.append(sorted(found, key=lambda d: -d["score"]))
    return results


if __name__ == "__main__":
    detections = detect(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
    assert "tensorflow" not in sys.modules, "LiteRT must run without TensorFlow"
    print(json.dumps({"tensorflow_imported": "tensorflow" in sys.modules, "detections": detections}))
