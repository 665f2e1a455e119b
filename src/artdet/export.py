"""Export a trained checkpoint as a SavedModel that takes uint8 images.

The SavedModel's ``serving_default`` takes ``inputs`` (uint8 [1, H, W, 3]) and
returns ``detection_boxes``, ``detection_classes``, ``detection_scores``,
``num_detections`` and ``image_info``. Its boxes are in pixels of the resized
model input; :func:`artdet.predict.Detector` maps them back to the image.
The label map is copied beside the model so that the folder is self-contained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def export(pipeline: str | Path, model_dir: str | Path, label_map: str | Path, out_dir: str | Path) -> Path:
    import tensorflow as tf
    from official.vision.serving import export_saved_model_lib

    from artdet.pipeline_config import load_params

    params, experiment = load_params(pipeline)
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}; run training first")
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    size = list(params.task.model.input_size[:2])
    export_saved_model_lib.export_inference_graph(
        input_type="image_tensor",
        batch_size=1,
        input_image_size=size,
        params=params,
        checkpoint_path=checkpoint,
        export_dir=str(out_dir),
    )
    shutil.copyfile(label_map, out_dir / "label_map.pbtxt")
    info = {"experiment": experiment, "checkpoint": Path(checkpoint).name, "input_size": size}
    (out_dir / "artdet_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
