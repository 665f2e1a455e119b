"""Run an exported model (SavedModel folder or TFLite file) on images; boxes come back in image pixels."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from artdet.data.label_map import read_label_map
from artdet.defaults import default

# The score threshold fitted on the val split, stored beside an exported model (inside the
# SavedModel folder, beside a .tflite file): see artdet.evaluate.operating_point.
OPERATING_POINT_FILE = "operating_point.json"
# The threshold of a model that has none stored (exported without a val split, or by hand).
UNFITTED_MIN_SCORE: float = default("detect.unfitted_min_score")


def read_operating_point(folder: str | Path) -> dict | None:
    """The operating point stored beside a model, or None for a model exported without one."""
    path = Path(folder) / OPERATING_POINT_FILE
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class Detection:
    class_id: int
    class_name: str
    score: float
    # Pixel corners in the input image: xmin, ymin, xmax, ymax.
    box: tuple[float, float, float, float]
    # A two-stage model's detector score for the box (``score`` is it x the class probability).
    box_score: float | None = None
    # The other classes found for this same box, best first: (class name, score); see one_per_box.
    alternatives: list[tuple[str, float]] = field(default_factory=list)


def one_per_box(detections: Sequence[Detection]) -> list[Detection]:
    """Each box once, with its best class and score; the other classes found for it in ``alternatives``.

    TFLite's detection post-processing returns every likely class of a box, a two-stage model
    its top classes, and per-class NMS can keep two classes of one object: the same box
    coordinates, repeated. The COCO evaluation needs every entry (a second guess still counts
    towards AP); a person needs one name per box, the best one, drawn last of none. Only boxes
    with the same corners (to 0.01 pixel) are merged: two different boxes that overlap are two
    detections, and deciding between them is NMS's job, not the display's.
    """
    groups: dict[tuple[float, ...], list[Detection]] = {}
    for det in detections:
        groups.setdefault(tuple(round(v, 2) for v in det.box), []).append(det)
    shown = []
    for same in groups.values():
        same = sorted(same, key=lambda d: -d.score)
        best = same[0]
        others = best.alternatives + [(d.class_name, d.score) for d in same[1:] if d.class_name != best.class_name]
        shown.append(replace(best, alternatives=others))
    return sorted(shown, key=lambda d: -d.score)


# Which interpreter runs .tflite files when Detector is not told: litert (default) or tensorflow.
RUNTIME_VARIABLE = "ARTDET_TFLITE_RUNTIME"


def tflite_interpreter(path: str | Path, runtime: str = "litert", threads: int | None = None):
    """An interpreter for a .tflite file: LiteRT's (``litert``) or TensorFlow's (``tensorflow``)."""
    threads = threads or os.cpu_count()
    if runtime == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ImportError(
                "running a .tflite file needs LiteRT: pip install ai-edge-litert (or set "
                f"{RUNTIME_VARIABLE}=tensorflow to use TensorFlow's interpreter)"
            ) from exc
        return Interpreter(model_path=str(path), num_threads=threads)
    if runtime == "tensorflow":
        import tensorflow as tf

        return tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    raise ValueError(f"{RUNTIME_VARIABLE}={runtime!r}: use litert or tensorflow")


class Detector:
    """A loaded model with its label map: a SavedModel folder, or a ``.tflite`` file.

    Both take uint8 RGB images of any size and return Model Garden's outputs;
    the label map lies beside the model (inside the SavedModel folder, or in
    the folder of the TFLite file). A two-stage model has its classifier there
    too (``classifier.joblib``): its detector finds the objects (one class) and
    the classifier names each box from the pixels the caller gave, so pass the
    full-resolution photo. ``name_boxes=False`` returns the detector's own boxes.

    ``default_min_score`` is the threshold a user sees the model at when they name none: the one
    fitted on the val split at export (``operating_point.json`` beside the model), else
    ``detect.unfitted_min_score``.
    """

    def __init__(self, model: str | Path, name_boxes: bool = True, tflite_runtime: str | None = None):
        model = Path(model)
        self.path = model.parent if model.suffix == ".tflite" else model
        label_map = self.path / "label_map.pbtxt"
        if model.suffix == ".tflite":
            if not model.is_file():
                raise FileNotFoundError(f"{model}: no such TFLite file")
            self._run = None
            self._tflite = self._load_tflite(model, tflite_runtime or os.environ.get(RUNTIME_VARIABLE, "litert"))
            self.max_batch: int | None = 1
        else:
            if not (model / "saved_model.pb").exists():
                raise FileNotFoundError(
                    f"{model}: not an exported model (a SavedModel folder with saved_model.pb, or a .tflite file)"
                )
            self._run = self._load_saved_model(model)
        if not label_map.exists():
            raise FileNotFoundError(f"{label_map}: the label map must lie beside the model")
        self.labels = read_label_map(label_map)
        self.operating_point = read_operating_point(self.path)
        self.default_min_score = float(
            self.operating_point["min_score"] if self.operating_point else UNFITTED_MIN_SCORE
        )
        self.namer = None
        from artdet.classify.boxes import CLASSIFIER_FILE

        if name_boxes and (self.path / CLASSIFIER_FILE).exists():
            from artdet.classify.boxes import BoxNamer

            self.namer = BoxNamer(self.path / CLASSIFIER_FILE)
            ids = {name: i for i, name in self.labels.items()}
            missing = sorted(set(self.namer.classes) - set(ids))
            if missing:
                raise ValueError(f"{self.path}: the classifier names {missing}, which are not in label_map.pbtxt")
            self._class_ids = ids

    def _load_saved_model(self, folder: Path):
        import tensorflow as tf

        fn = tf.saved_model.load(str(folder)).signatures["serving_default"]
        self.max_batch = fn.structured_input_signature[1]["inputs"].shape[0]  # None: any batch size

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return {k: np.asarray(v) for k, v in fn(inputs=tf.convert_to_tensor(batch, tf.uint8)).items()}

        return run

    @staticmethod
    def _load_tflite(path: Path, runtime: str = "litert"):
        """A function from one RGB image to Model Garden's outputs, boxes in the image's pixels.

        ``runtime`` is ``litert`` (the standalone LiteRT interpreter a phone runs, ``ai-edge-litert``:
        no TensorFlow, so a small machine serves the file in a fraction of the memory and start-up
        time) or ``tensorflow`` (TensorFlow's own ``tf.lite.Interpreter``, deprecated; kept to
        compare the two).
        """
        from artdet.deploy.tflite import preprocess

        info_path = path.parent / "artdet_model.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        if "input_size" not in info:
            raise FileNotFoundError(f"{info_path}: missing; export TFLite files with `artdet export-tflite`")
        size = int(info["input_size"])
        class_offset = int(info.get("class_offset", 0))
        per_box = int(info.get("classes_per_detection", 1))
        interpreter = tflite_interpreter(path, runtime)
        runner = interpreter.get_signature_runner("serving_default")
        lock = threading.Lock()  # an interpreter is not safe to call from two threads at once

        def run(image: np.ndarray) -> dict[str, np.ndarray]:
            batch, scale = preprocess(image, size)
            with lock:
                out = {k: np.array(v) for k, v in runner(inputs=batch).items()}
            # num_detections counts boxes; each box has `per_box` class entries, grouped by box.
            count = min(int(out["num_detections"][0]) * per_box, out["detection_scores"].shape[1])
            order = np.argsort(-out["detection_scores"][0, :count], kind="stable")
            out["detection_boxes"] = out["detection_boxes"][:, order]
            out["detection_scores"] = out["detection_scores"][:, order]
            out["detection_classes"] = out["detection_classes"][:, order] + class_offset
            out["num_detections"] = np.array([count])
            # Boxes come in pixels of the padded square input; image_info's scale maps them back.
            out["image_info"] = np.array([[[0, 0], [size, size], list(scale), [0, 0]]], np.float32)
            return out

        return run

    def __call__(self, image: np.ndarray, min_score: float = 0.0) -> list[Detection]:
        """Detect objects in an RGB uint8 image of shape [H, W, 3]."""
        return self.detect_batch([image], min_score)[0]

    def detect_batch(self, images: list[np.ndarray], min_score: float = 0.0) -> list[list[Detection]]:
        """Detect objects in RGB uint8 images of one shape, in one model call when the model allows."""
        if self.max_batch is not None and len(images) > self.max_batch:
            return [
                d
                for i in range(0, len(images), self.max_batch)
                for d in self.detect_batch(images[i : i + self.max_batch], min_score)
            ]
        out = self._tflite(images[0]) if self._run is None else self._run(np.stack(images))
        counts = np.asarray(out["num_detections"]).astype(int)
        all_boxes = np.asarray(out["detection_boxes"])
        all_scores = np.asarray(out["detection_scores"])
        all_classes = np.asarray(out["detection_classes"]).astype(int)
        # image_info rows: original size, input size, scale (y, x), offset (y, x).
        infos = np.asarray(out["image_info"])
        results = []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            scale_y, scale_x = infos[i][2]
            scores, classes = all_scores[i][: counts[i]], all_classes[i][: counts[i]]
            keep = (scores >= min_score) & (classes >= 1)  # id 0 is the background
            ymin, xmin, ymax, xmax = (all_boxes[i][: counts[i]][keep] / [scale_y, scale_x, scale_y, scale_x]).T
            # Vectorised: the Python loop only builds the dataclasses (per-box NumPy calls cost as much as the model).
            corners = np.stack(
                [np.clip(xmin, 0, width), np.clip(ymin, 0, height), np.clip(xmax, 0, width), np.clip(ymax, 0, height)],
                1,
            ).tolist()
            found = [
                Detection(c, self.labels.get(c, str(c)), s, tuple(box))
                for c, s, box in zip(classes[keep].tolist(), scores[keep].tolist(), corners, strict=True)
            ]
            results.append(self._name(image, found, min_score) if self.namer else found)
        return results

    def _name(self, image: np.ndarray, found: list[Detection], min_score: float) -> list[Detection]:
        """A two-stage model's detections: each box once per top class, score = box score x class probability."""
        from artdet.classify.boxes import NAME_FLOOR

        boxes = [d for d in found if d.score >= max(min_score, NAME_FLOOR)]
        named = self.namer.name(image, [d.box for d in boxes], [d.score for d in boxes])
        out = [
            Detection(self._class_ids[name], name, score, d.box, box_score=d.score)
            for d, classes in zip(boxes, named, strict=True)
            for name, score in classes
            if score >= min_score
        ]
        return sorted(out, key=lambda d: -d.score)
