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
        self.labels = read_label_map(model_dir / "label_map.pbtxt")
        self._fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]

    def __call__(self, image: np.ndarray, min_score: float = 0.0) -> list[Detection]:
        """Detect objects in an RGB uint8 image of shape [H, W, 3]."""
        import tensorflow as tf

        out = self._fn(inputs=tf.convert_to_tensor(image[None], tf.uint8))
        count = int(np.asarray(out["num_detections"])[0])
        boxes = np.asarray(out["detection_boxes"])[0][:count]
        scores = np.asarray(out["detection_scores"])[0][:count]
        classes = np.asarray(out["detection_classes"])[0][:count].astype(int)
        # image_info rows: original size, input size, scale (y, x), offset (y, x).
        scale = np.asarray(out["image_info"])[0][2]
        height, width = image.shape[:2]
        result = []
        for (ymin, xmin, ymax, xmax), score, cls in zip(boxes, scores, classes, strict=True):
            if score < min_score:
                continue
            x0 = float(np.clip(xmin / scale[1], 0, width))
            y0 = float(np.clip(ymin / scale[0], 0, height))
            x1 = float(np.clip(xmax / scale[1], 0, width))
            y1 = float(np.clip(ymax / scale[0], 0, height))
            result.append(Detection(int(cls), self.labels.get(int(cls), str(cls)), float(score), (x0, y0, x1, y1)))
        return result
