"""Convert an exported SavedModel to TFLite (float32 or float16 weights).

The converted model keeps the SavedModel's signature (uint8 image of any size
in; boxes, classes, scores, num_detections, image_info out), so `artdet
detect` and `artdet serve` run it like the SavedModel. Model Garden's
detection post-processing uses TensorFlow ops that TFLite has no builtin for,
so the converter keeps them as select TF ops (the full `tensorflow` package's
interpreter runs them; the slim `tflite-runtime` does not).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

PRECISIONS = ("float32", "float16")


def convert(saved_model: str | Path, out_path: str | Path, precision: str = "float32") -> Path:
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {PRECISIONS}")
    saved_model, out_path = Path(saved_model), Path(out_path)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(converter.convert())
    shutil.copyfile(saved_model / "label_map.pbtxt", out_path.parent / "label_map.pbtxt")
    info_path = saved_model / "artdet_model.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        (out_path.parent / "artdet_model.json").write_text(json.dumps({**info, "format": "tflite"}, indent=2) + "\n")
    return out_path
