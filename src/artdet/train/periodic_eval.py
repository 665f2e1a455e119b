"""Validation during training: COCO AP on the val split, the ``best`` checkpoint, TensorBoard images.

Model Garden's own evaluator crashes under numpy 2, so an orbit train action
does it instead every ``trainer.validation_interval`` steps and at the last
step: it copies the training weights into a second model, recomputes that
copy's batch-norm statistics on training batches (see
:mod:`artdet.train.batch_norm`; a young model scores ~0 with the lagging moving
averages), runs it over the validation TFRecords and scores the detections
with pycocotools (:func:`artdet.evaluate.metrics.coco_metrics`). The model with the
highest AP50 so far is kept as ``<model_dir>/best/model`` (a model-only
checkpoint, like ``final/model``), its scores in ``best.json``; every
validation is a line of ``validation.json`` and a point in TensorBoard's
``validation`` run, with a few val images with boxes drawn. The training
weights and their optimizer state are never touched. With ``patience``, a run
whose AP50 stopped improving ends early (:class:`EarlyStop`).

The validation data is the val split (``task.validation_data`` in
``pipeline.yaml``), carved out of the training images: the ``best``
checkpoint and early stopping never look at the test split, so the test
scores of a model exported from it stay fair. Each record names its split.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class EarlyStop(Exception):
    """Raised by :class:`PeriodicValidator` (an orbit train action) to end training; ``artdet train`` catches it.

    Orbit's controller has no way for an action to end the run, and raising
    from the action leaves it in a known state: the train loop of ``step`` is
    done, its outputs (``output``) are not yet written to TensorBoard and no
    checkpoint of ``step`` is saved; the catcher does both.
    """

    def __init__(self, step: int, output: dict, reason: str):
        super().__init__(reason)
        self.step = step
        self.output = output
        self.reason = reason


# Detections drawn on TensorBoard's validation images score at least this much.
DRAW_SCORE = 0.3
# What Model Garden's detection generator returns (boxes [ymin, xmin, ymax, xmax] in model-input pixels).
OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def _boxes_xyxy(yxyx: np.ndarray) -> list[tuple[float, float, float, float]]:
    return [(float(b[1]), float(b[0]), float(b[3]), float(b[2])) for b in yxyx]


def denormalise(image: np.ndarray) -> np.ndarray:
    """Model Garden's normalised input image back to uint8 RGB."""
    from official.vision.ops.preprocess_ops import MEAN_RGB, STDDEV_RGB

    return np.clip(image * np.array(STDDEV_RGB) + np.array(MEAN_RGB), 0, 255).astype(np.uint8)


class PeriodicValidator:
    """An orbit train action that validates the training model every ``every`` steps and at ``total``."""

    def __init__(
        self,
        trainer,
        task,
        params,
        experiment: str,
        model_dir: str | Path,
        classes: list[str],
        bn_batches: int,
        images: int = 4,
        on_done=None,
        split: str | None = "val",
        patience: int | None = None,
    ):
        self.trainer = trainer
        self.task = task
        self.params = params
        self.experiment = experiment
        self.model_dir = Path(model_dir)
        self.every = int(params.trainer.validation_interval)
        self.total: int | None = int(params.trainer.train_steps)
        self.patience = patience
        self.classes = {i: name for i, name in enumerate(classes, start=1)}
        self.bn_batches = bn_batches
        self.images = images
        self.on_done = on_done
        self.split = split
        self.history_path = self.model_dir / "validation.json"
        self.history: list[dict] = json.loads(self.history_path.read_text()) if self.history_path.exists() else []
        best_path = self.model_dir / "best.json"
        self.best = json.loads(best_path.read_text()) if best_path.exists() else None
        self.model = None
        self.last_step: int | None = None
        self._train_batches = None
        self._writer = None

    def set_schedule(self, total: int | None, every: int) -> None:
        """Validate every ``every`` steps and at ``total`` (None: not as an action, e.g. during a probe)."""
        self.total = total
        self.every = every

    def scores(self, until: int | None = None) -> list[float]:
        """The AP50 of every validation so far (up to step ``until``), in step order."""
        return [h["AP50"] for h in sorted(self.history, key=lambda h: h["step"]) if until is None or h["step"] <= until]

    def stop_reason(self, step: int) -> str | None:
        """Why training should stop at ``step`` (a validation step) under ``patience``, or None to go on."""
        from artdet.train.schedule import should_stop

        if not should_stop(self.scores(until=step), self.patience):
            return None
        best = max((h for h in self.history if h["step"] <= step), key=lambda h: (h["AP50"], -h["step"]))
        return (
            f"validation AP50 has not improved for {self.patience} validation{'s' if self.patience != 1 else ''} "
            f"(patience {self.patience}; best {best['AP50']:.3f} at step {best['step']})"
        )

    # orbit calls this with the train loop's outputs after every `steps_per_loop` steps.
    def __call__(self, output: dict) -> None:
        step = int(self.trainer.global_step.numpy())
        at_end = self.total is not None and step >= self.total
        if at_end or (self.total is not None and self.every > 0 and step % self.every == 0):
            start = time.perf_counter()
            self.validate(step)
            if self.on_done is not None:
                self.on_done(time.perf_counter() - start)
            reason = None if at_end else self.stop_reason(step)
            if reason:
                raise EarlyStop(step, output, reason)

    def _build(self) -> None:
        import tensorflow as tf

        self.model = self.task.build_model()
        self._train_batches = iter(self.task.build_inputs(self.params.task.train_data))
        self._writer = tf.summary.create_file_writer(str(self.model_dir / "validation"))
        self._detect = tf.function(
            lambda features, labels: self.model(
                features,
                anchor_boxes=labels["anchor_boxes"],
                image_shape=labels["image_info"][:, 1, :],
                training=False,
            )
        )

    def _copy_weights(self) -> str:
        """The training model's current weights into the validation model, through a checkpoint.

        A checkpoint matches variables by their place in the object graph, so
        the copy does not depend on the order Keras created them in.
        """
        import tensorflow as tf

        prefix = tf.train.Checkpoint(model=self.trainer.model).write(str(self.model_dir / "validation" / "weights"))
        tf.train.Checkpoint(model=self.model).read(prefix).expect_partial()
        return prefix

    def _predict(self) -> tuple[list[dict], list[dict], list[dict]]:
        """Ground truth, predictions (in original image pixels) and a few drawn images."""
        ground_truth, predictions, drawn = [], [], []
        for features, labels in self.task.build_inputs(self.params.task.validation_data):
            result = self._detect(features, labels)
            outputs = {k: result[k].numpy() for k in OUTPUTS}
            info = labels["image_info"].numpy()
            gts = {k: v.numpy() for k, v in labels["groundtruths"].items()}
            for i in range(info.shape[0]):
                image_id = len(ground_truth) + 1
                scale = np.tile(info[i, 2], 2)  # (y, x, y, x): original -> model input pixels
                count = int(np.asarray(gts["num_detections"][i]).reshape(-1)[0])
                boxes = _boxes_xyxy(gts["boxes"][i, :count])
                classes = gts["classes"][i, :count].astype(int)
                ground_truth.append(
                    {
                        "id": image_id,
                        "width": int(info[i, 0, 1]),
                        "height": int(info[i, 0, 0]),
                        "boxes": [(int(c), *b) for c, b in zip(classes, boxes, strict=True)],
                    }
                )
                n = int(outputs["num_detections"][i])
                found = outputs["detection_boxes"][i, :n]
                scores = outputs["detection_scores"][i, :n]
                labels_ = outputs["detection_classes"][i, :n].astype(int)
                for box, score, cls in zip(_boxes_xyxy(found / scale), scores, labels_, strict=True):
                    if cls > 0:  # class 0 is Model Garden's background
                        predictions.append(
                            {"image_id": image_id, "class_id": int(cls), "score": float(score), "box": box}
                        )
                if len(drawn) < self.images:
                    drawn.append(self._draw(features[i].numpy(), info[i], found, scores, labels_, boxes, classes))
        return ground_truth, predictions, drawn

    def _draw(self, image, info, found, scores, labels_, gt_boxes, gt_classes) -> np.ndarray:
        """The model input (cropped to the image) with ground truth and detections scoring >= DRAW_SCORE."""
        from artdet.deploy.draw import draw_detections, draw_ground_truth
        from artdet.deploy.runtime import Detection

        height, width = np.rint(info[1]).astype(int)
        pixels = denormalise(image[:height, :width])
        scale = np.tile(info[2], 2)
        gt = [
            (self.classes.get(int(c), str(c)), np.array(b) * scale[[1, 0, 3, 2]])
            for c, b in zip(gt_classes, gt_boxes, strict=True)
        ]
        pixels = draw_ground_truth(pixels, gt)
        detections = [
            Detection(int(c), self.classes.get(int(c), str(c)), float(s), box)
            for box, s, c in zip(_boxes_xyxy(found), scores, labels_, strict=True)
            if s >= DRAW_SCORE and c > 0
        ]
        return draw_detections(pixels, detections)

    def validate(self, step: int, record: bool = True) -> dict:
        """Score the training model at ``step``; ``record=False`` only measures (nothing is written or kept).

        A time budget's probe validates twice: the first, recorded, builds the
        validation model and traces its functions; the second, unrecorded, takes
        as long as each later validation will.
        """
        import tensorflow as tf

        from artdet.evaluate.metrics import coco_metrics
        from artdet.train.batch_norm import average_statistics

        start = time.perf_counter()
        if self.model is None:
            self._build()
        copied = self._copy_weights()
        if self.bn_batches > 0:
            batches = (next(self._train_batches) for _ in range(self.bn_batches))
            average_statistics(self.model, batches, self.experiment)
        recalibrated = time.perf_counter()
        ground_truth, predictions, drawn = self._predict()
        detected = time.perf_counter()
        # Variables the first forward pass created were restored from the copy as they were
        # made (deferred restoration); from here on the copy is not needed.
        for path in Path(copied).parent.glob(f"{Path(copied).name}.*"):
            path.unlink()
        metrics, _ = coco_metrics(ground_truth, predictions, self.classes)
        log.info(
            "validation at step %d: weights and batch-norm statistics %.1f s, detection %.1f s, scoring %.1f s",
            step,
            recalibrated - start,
            detected - recalibrated,
            time.perf_counter() - detected,
        )
        record = {
            "step": step,
            "split": self.split,
            **{k: metrics[k] for k in ("AP", "AP50", "AP75", "AR100")},
            "per_class_AP50": {name: v["AP50"] for name, v in metrics["per_class"].items()},
            "images": metrics["num_images"],
            "boxes": metrics["num_boxes"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        if not record:
            return record
        improved = self.best is None or record["AP50"] > self.best["AP50"]
        if improved:
            path = tf.train.Checkpoint(model=self.model).write(str(self.model_dir / "best" / "model"))
            self.best = {**record, "checkpoint": str(Path(path).relative_to(self.model_dir))}
            (self.model_dir / "best.json").write_text(json.dumps(self.best, indent=2) + "\n")
        self.history = [h for h in self.history if h["step"] != step] + [record]
        self.history_path.write_text(json.dumps(self.history, indent=2) + "\n")
        with self._writer.as_default(step=step):
            for name in ("AP", "AP50", "AP75", "AR100"):
                tf.summary.scalar(name, record[name])
            for name, value in record["per_class_AP50"].items():
                tf.summary.scalar(f"AP50_per_class/{name}", value)
            for i, image in enumerate(drawn):
                tf.summary.image(f"detections_{i}", image[None], description="green: ground truth")
        self._writer.flush()
        self.last_step = step
        from artdet.train.progress import tell

        tell(
            f"{chr(10) if sys.stderr.isatty() else ''}validation ({self.split} split) | step {step} | "
            f"AP50 {record['AP50']:.3f} | "
            f"AP {record['AP']:.3f} | {record['images']} images | best AP50 {self.best['AP50']:.3f} "
            f"(step {self.best['step']}){' (new best)' if improved else ''} | {record['seconds']:.1f} s"
        )
        return record

    def write(self, prefix: str | Path) -> str:
        """The validation model as it was last validated (recalibrated weights) as a model-only checkpoint."""
        import tensorflow as tf

        return tf.train.Checkpoint(model=self.model).write(str(prefix))
