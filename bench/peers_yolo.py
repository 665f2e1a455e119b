"""Train YOLOv8n from scratch within a wall-clock budget, then detect on the test images (Ultralytics).

Runs in the peers' own virtualenv (``make bench-peers`` builds it), never in
artdet's: Ultralytics and PyTorch are not dependencies of the package. Called
by ``bench/peers.py`` with a YOLO-format dataset it wrote; prints one JSON
object: when the final weights were written (the caller times the training
from its own process start, as it times ours), epochs, and per test image its
detections (class index, score, box in pixels) and the latency of one
``predict`` call on the already decoded image (ours is timed from decoded
pixels too). The confidence floor, NMS IoU and detection cap are the caller's,
read from our model's own settings, so both detectors keep the same boxes.

    python peers_yolo.py DATA_YAML TEST_LIST OUT_DIR --budget-seconds 720 --conf 0.01 --iou 0.5 --max-det 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_yaml")
    parser.add_argument("test_list", help="text file, one test image path per line")
    parser.add_argument("out_dir")
    parser.add_argument("--budget-seconds", type=float, required=True)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train-images", type=int, required=True)
    parser.add_argument("--conf", type=float, required=True, help="confidence floor of the kept detections")
    parser.add_argument("--iou", type=float, required=True, help="NMS IoU threshold")
    parser.add_argument("--max-det", type=int, required=True, help="most detections per image")
    args = parser.parse_args()

    # Offline and quiet, and the user's own Ultralytics settings untouched: settings live in the run
    # folder, with no sync and no logger integrations; no plots (they fetch a font).
    out = Path(args.out_dir)
    os.environ["YOLO_CONFIG_DIR"] = str(out / "ultralytics-settings")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO, settings

    off = ("sync", "clearml", "comet", "dvc", "hub", "mlflow", "raytune", "tensorboard", "wandb")
    settings.update({key: False for key in off if key in settings})
    settings.update({"runs_dir": str(out / "runs"), "weights_dir": str(out / "weights")})

    model = YOLO("yolov8n.yaml")  # the architecture only: from scratch, no pretrained weights
    start = time.perf_counter()
    model.train(
        data=args.data_yaml,
        imgsz=args.imgsz,
        batch=args.batch,
        epochs=10_000,
        time=args.budget_seconds / 3600,  # hours; Ultralytics fits the epochs to it
        device="cpu",
        workers=2,
        plots=False,
        val=False,
        project=str(out),
        name="train",
        exist_ok=True,
        seed=0,
        amp=False,
        verbose=False,
    )
    train_seconds = time.perf_counter() - start
    weights_written_at = time.time()  # the caller's clock started when it launched this process
    epochs = int(model.trainer.epoch) + 1
    weights = Path(model.trainer.last)

    trained = YOLO(str(weights))
    paths = Path(args.test_list).read_text().split()
    options = {
        "imgsz": args.imgsz,
        "conf": args.conf,
        "iou": args.iou,
        "max_det": args.max_det,
        "device": "cpu",
        "verbose": False,
    }
    import cv2  # Ultralytics' own image reader and channel order (BGR) for arrays

    decoded = [cv2.imread(path) for path in paths]
    for pixels in decoded[:3]:
        trained.predict(pixels, **options)  # warm-up
    images, latencies = [], []
    for path, pixels in zip(paths, decoded, strict=True):
        start = time.perf_counter()
        result = trained.predict(pixels, **options)[0]
        latencies.append(time.perf_counter() - start)
        boxes = result.boxes
        images.append(
            {
                "image": Path(path).name,
                "detections": [
                    [int(c), round(float(s), 5), [round(float(v), 2) for v in box]]
                    for c, s, box in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)
                ],
            }
        )
    print(
        json.dumps(
            {
                "train_call_seconds": round(train_seconds, 1),
                "weights_written_at": weights_written_at,
                "epochs": epochs,
                "train_images_per_s": round(epochs * args.train_images / train_seconds, 2),
                "options": options,
                "latency_ms": round(statistics.median(latencies) * 1000, 2),
                "images": images,
            }
        )
    )


if __name__ == "__main__":
    main()
