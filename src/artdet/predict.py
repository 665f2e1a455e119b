"""Run an exported SavedModel on images and return boxes in image pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artdet.label_map import read_label_map


@dataclass
class Detection:
    class_id: int
    class_name: str
    score: float
    # Pixel corners in the input image: xmin, ymin, xmax, ymax.
    box: tuple[float, float, float, float]


class Detector:
    """A loaded SavedModel with its label map."""

    def __init__(self, model_dir: str | Path):
        import tensorflow as tf

        model_dir = Path(model_dir)
        if not (model_dir / "saved_model.pb").exists():
            raise FileNotFoundError(f"{model_dir}: not an exported SavedModel folder (no saved_model.pb)")
        label_map = model_dir / "label_map.pbtxt"
        if not label_map.exists():
            raise FileNotFoundError(f"{label_map}: the label map must lie beside the model")
        self.path = model_dir
        self.labels = read_label_map(label_map)
        self._fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
        spec = self._fn.structured_input_signature[1]["inputs"]
        self.max_batch = spec.shape[0]  # None: any batch size

    def __call__(self, image: np.ndarray, min_score: float = 0.0) -> list[Detection]:
        """Detect objects in an RGB uint8 image of shape [H, W, 3]."""
        return self.detect_batch([image], min_score)[0]

    def detect_batch(self, images: list[np.ndarray], min_score: float = 0.0) -> list[list[Detection]]:
        """Detect objects in RGB uint8 images of one shape, in one model call when the model allows."""
        import tensorflow as tf

        if self.max_batch is not None and len(images) > self.max_batch:
            return [
                d
                for i in range(0, len(images), self.max_batch)
                for d in self.detect_batch(images[i : i + self.max_batch], min_score)
            ]
        out = self._fn(inputs=tf.convert_to_tensor(np.stack(images), tf.uint8))
        counts = np.asarray(out["num_detections"]).astype(int)
        all_boxes = np.asarray(out["detection_boxes"])
        all_scores = np.asarray(out["detection_scores"])
        all_classes = np.asarray(out["detection_classes"]).astype(int)
        # image_info rows: original size, input size, scale (y, x), offset (y, x).
        infos = np.asarray(out["image_info"])
        results = []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            scale = infos[i][2]
            found = []
            for (ymin, xmin, ymax, xmax), score, cls in zip(
                all_boxes[i][: counts[i]], all_scores[i][: counts[i]], all_classes[i][: counts[i]], strict=True
            ):
                if score < min_score:
                    continue
                box = (
                    float(np.clip(xmin / scale[1], 0, width)),
                    float(np.clip(ymin / scale[0], 0, height)),
                    float(np.clip(xmax / scale[1], 0, width)),
                    float(np.clip(ymax / scale[0], 0, height)),
                )
                found.append(Detection(int(cls), self.labels.get(int(cls), str(cls)), float(score), box))
            results.append(found)
        return results
