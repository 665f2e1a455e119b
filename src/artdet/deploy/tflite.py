"""Export a trained one-stage model to TFLite: float32, float16 weights, or int8.

This follows Model Garden's mobile path, not a conversion of the desktop
SavedModel: a second graph is exported from the same checkpoint with a fixed
input (one float image, already resized, padded and normalised to the model's
square input) and Model Garden's TFLite post-processing, which the converter
turns into TFLite's built-in ``TFLite_Detection_PostProcess`` op. Every op is
then a TFLite builtin, so the file runs in the slim ``tflite-runtime`` and on
phones, and int8 quantisation (calibrated on training images, preprocessed
the same way) covers the network but for its input, its output and the last
layer of the class-score head (see below).
:class:`artdet.deploy.runtime.Detector` does the preprocessing in NumPy and maps the
boxes back to the image, reading ``artdet_model.json`` beside the file.

Model Garden has no TFLite path for Faster R-CNN; ``export_tflite`` refuses it.

How the post-processing op is set up decides whether the phone keeps the
SavedModel's accuracy. The SavedModel runs NMS per class, so where the model
hesitates between look-alike classes one painting comes back as "duchess
0.42" and "queen 0.39", and AP counts the right one. The op's fast NMS keeps
one class per box unless told otherwise (the phone model then loses every
second guess: a quarter of its AP50 on look-alike classes), and its regular,
per-class NMS splits the classes among threads so that, with fewer threads
than classes, the class whose column index equals the thread count is never
processed (measured: with 2 threads the third class of three vanished; with
1 or 4 it came back) - a phone's thread count would decide which class is
lost. So the op runs fast NMS (one class-agnostic NMS over each box's best
score) and returns every class's score for each kept box
(``max_classes_per_detection`` = the number of classes), which keeps the
second guesses without the thread-dependent loop.

The op must also be told which score column is the background: Model
Garden's RetinaNet scores carry one (column 0), and its TFLite path passes
the full column count as ``num_classes``, which makes the op treat the
background as a class. We pass the count without it, the op's own
convention; its output classes then count from 0 without the background,
and ``artdet_model.json`` records ``class_offset: 1`` (add it to reach the
label map's ids) and ``classes_per_detection`` (the op's ``num_detections``
counts boxes; each box has that many class entries).

int8 keeps the class-score head's last layer float. Quantised, the class
logits share one int8 scale stretched over the background's very negative
values (about 0.07 logit per step), so the scores the op sees come in steps
of about 0.015 near 0.4: the int8 file of a look-alike model returned 38
distinct scores over 6000 detections. Detections then tie, AP's ranking of
them depends on their order, and the file's AP moved 0.02 either way from
the SavedModel's from one machine's training to another's. With the last
convolution, the reshapes, the concatenation and the sigmoid in float (the
converter's selective quantisation, found by walking back from the op's
score input) the scores keep their order; the rest of the network, the box
head included, stays int8.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PRECISIONS = ("float32", "float16", "int8")
# Model Garden's input normalisation (preprocess_ops.MEAN_RGB / STDDEV_RGB), on 0..255 pixels.
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# The same as OpenCV scalars (four channels; the fourth is unused).
_MEAN_SCALAR = (*MEAN_RGB, 0.0)
_INVERSE_STDDEV_SCALAR = (*(1.0 / s for s in STDDEV_RGB), 0.0)


def preprocess(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Model Garden's serving preprocessing for one uint8 RGB image, in NumPy.

    The image is scaled to fit ``size`` x ``size`` keeping its aspect ratio,
    normalised, and padded with zeros at the bottom and right. Returns the
    float32 [1, size, size, 3] input and the (y, x) scale: input pixels per image pixel.
    """
    import cv2

    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = cv2.resize(image.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # OpenCV's per-channel scalar arithmetic: NumPy's broadcast over the last axis of 3 cost
    # more than the int8 model's own call (same values to float32 rounding).
    cv2.subtract(resized, _MEAN_SCALAR, dst=resized)
    cv2.multiply(resized, _INVERSE_STDDEV_SCALAR, dst=resized)
    batch = np.zeros((1, size, size, 3), np.float32)
    batch[0, :new_h, :new_w] = resized
    return batch, (new_h / height, new_w / width)  # as Model Garden's image_info[2]


def calibration_images(records: list[str | Path], count: int = 100) -> list[np.ndarray]:
    """Up to ``count`` decoded images from TFRecords, spread over all files, for int8 calibration."""
    import tensorflow as tf

    from artdet.data.tfrecord import read_examples

    examples = [ex for path in records for ex in read_examples(path)]
    step = max(1, len(examples) // count)
    return [tf.io.decode_image(ex["image/encoded"], channels=3).numpy() for ex in examples[::step][:count]]


# What Detector adds to the op's output classes to reach label-map ids (the op counts from 0
# without the background). Files exported before this setting existed have none: offset 0.
CLASS_OFFSET = 1


def classes_per_detection(params) -> int:
    """Class entries the op returns per kept box: every class of the dataset (background excluded)."""
    return int(params.task.model.num_classes) - 1


@contextlib.contextmanager
def _background_column_skipped() -> Iterator[None]:
    """Model Garden's TFLite post-processing with ``num_classes`` counted without the background.

    Model Garden computes ``num_classes`` from the score tensor (background
    included) and writes it straight into the op's attributes; the op derives
    its label offset as columns minus ``num_classes``, so it must see one less.
    """
    from official.vision.modeling.layers import detection_generator

    original = detection_generator._generate_detections_tflite_implements_signature

    def signature(config: dict) -> str:
        return original({**config, "num_classes": config["num_classes"] - 1})

    detection_generator._generate_detections_tflite_implements_signature = signature
    try:
        yield
    finally:
        detection_generator._generate_detections_tflite_implements_signature = original


# Ops between the class-score convolutions and the post-processing op's score input: they carry
# the scores through unchanged (shape, order, sigmoid) and stay float with the convolutions.
_SCORE_PASSTHROUGH = ("RESHAPE", "CONCATENATION", "LOGISTIC", "DEQUANTIZE", "QUANTIZE")


def class_score_nodes(model: bytes) -> list[str]:
    """The tensors of the class-score head's last layer and what carries it to the post-processing.

    Walks back from ``TFLite_Detection_PostProcess``'s score input (its second)
    through reshapes, concatenations and the sigmoid to the convolutions that
    produce the logits, including their depthwise half when the head is
    separable. Returns tensor names of ``model`` (a converted or calibrated
    TFLite flatbuffer); empty when there is no post-processing op.
    """
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the interpreter's only view of the graph, as the debugger uses
    producer = {out: op for op in ops for out in op["outputs"]}
    post = [op for op in ops if op["op_name"] == "TFLite_Detection_PostProcess"]
    if not post:
        return []
    nodes: list[str] = []
    pending = [post[0]["inputs"][1]]
    while pending:
        tensor = pending.pop()
        op = producer.get(tensor)
        if op is None or names[tensor] in nodes:
            continue
        if op["op_name"] in _SCORE_PASSTHROUGH:
            nodes.append(names[tensor])
            pending.extend(op["inputs"] if op["op_name"] == "CONCATENATION" else op["inputs"][:1])
        elif op["op_name"] == "CONV_2D":
            nodes.append(names[tensor])
            pending.append(op["inputs"][0])  # the depthwise half of a separable convolution
        elif op["op_name"] == "DEPTHWISE_CONV_2D":
            nodes.append(names[tensor])
    return nodes


def _quantize_int8(converter, calibration: list[np.ndarray], size: int, float_scores: bool) -> bytes:
    """The int8 flatbuffer, its class-score head left float when ``float_scores``."""
    import tensorflow as tf

    def representative():
        for image in calibration:
            yield [tf.constant(preprocess(image, size)[0])]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    if not float_scores:
        return converter.convert()
    # Selective quantisation: calibrate once, then quantise with the score head left float.
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
    nodes = class_score_nodes(debugger.calibrated_model)
    if not nodes:
        raise ValueError("int8 export: no TFLite_Detection_PostProcess op found to keep the class scores float")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    return debugger.get_nondebug_quantized_model()


def _export_tflite_graph(pipeline: Path, model_dir: Path, export_dir: Path, which: str = "final") -> tuple[int, int]:
    """The fixed-size SavedModel with TFLite post-processing; returns its input size and classes per box."""
    from official.vision.serving import export_saved_model_lib

    from artdet.deploy.export import final_checkpoint
    from artdet.train.pipeline_config import load_params

    params, header = load_params(pipeline)
    if header["preset"] == "faster_rcnn" or not hasattr(params.task.model, "detection_generator"):
        raise ValueError(
            f"{pipeline}: TFLite export needs a one-stage model (preset ssd_mobilenet); Model Garden has no "
            "TFLite path for Faster R-CNN"
        )
    generator = params.task.model.detection_generator
    generator.nms_version = "tflite"
    max_detections = generator.max_num_detections
    generator.tflite_post_processing.override(
        {
            "max_detections": max_detections,
            "max_classes_per_detection": classes_per_detection(params),
            "use_regular_nms": False,  # see the module docstring: per-class NMS loses a class to threading
            "detections_per_class": max_detections,
            "nms_score_threshold": generator.pre_nms_score_threshold,
            "nms_iou_threshold": generator.nms_iou_threshold,
        }
    )
    size = int(params.task.model.input_size[0])
    with _background_column_skipped():
        export_saved_model_lib.export_inference_graph(
            input_type="tflite",
            batch_size=1,
            input_image_size=[size, size],
            params=params,
            checkpoint_path=final_checkpoint(model_dir, which),
            export_dir=str(export_dir),
        )
    return size, classes_per_detection(params)


def export_tflite(
    pipeline: str | Path,
    model_dir: str | Path,
    label_map: str | Path,
    out_path: str | Path,
    precision: str = "float32",
    calibration: list[np.ndarray] | None = None,
    which: str = "final",
    float_scores: bool = True,
) -> Path:
    """Write ``out_path`` with the label map and ``artdet_model.json`` beside it.

    int8 needs ``calibration``: uint8 RGB images (training images), each
    preprocessed as at inference time. ``float_scores=False`` quantises the
    class-score head too (coarse, tied scores: see the module docstring); it is
    there to measure what the float head buys.
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {PRECISIONS}")
    if precision == "int8" and not calibration:
        raise ValueError("int8 needs calibration images: pass --calibration-records with the training TFRecords")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        size, per_box = _export_tflite_graph(Path(pipeline), Path(model_dir), Path(scratch) / "graph", which)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(scratch) / "graph"))
        if precision == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        if precision == "int8":
            out_path.write_bytes(_quantize_int8(converter, calibration, size, float_scores))
        else:
            out_path.write_bytes(converter.convert())
    shutil.copyfile(label_map, out_path.parent / "label_map.pbtxt")
    info = {
        "format": "tflite",
        "precision": precision,
        "input_size": size,
        "class_offset": CLASS_OFFSET,
        "classes_per_detection": per_box,
        "preprocessing": {"mean_rgb": MEAN_RGB, "stddev_rgb": STDDEV_RGB, "resize": "fit, pad bottom-right"},
        "calibration_images": len(calibration or []),
        "float_score_head": precision != "int8" or float_scores,
        "checkpoint": which,
    }
    (out_path.parent / "artdet_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_path
