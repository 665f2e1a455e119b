"""Export a trained checkpoint as a SavedModel that takes uint8 images.

The SavedModel's ``serving_default`` takes ``inputs`` (uint8 [N, H, W, 3]) and
returns ``detection_boxes``, ``detection_classes``, ``detection_scores``,
``num_detections`` and ``image_info``. Its boxes are in pixels of the resized
model input; :func:`artdet.deploy.runtime.Detector` maps them back to the image.
The label map is copied beside the model so that the folder is self-contained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def _train_summary(model_dir: Path) -> dict:
    path = model_dir / "train_summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


CHECKPOINTS = ("final", "best")


def final_checkpoint(model_dir: str | Path, which: str = "final") -> str:
    """The checkpoint to export: ``final`` or ``best`` (highest validation AP50 during training).

    ``final`` is the model-only checkpoint with recomputed batch-norm
    statistics, else the newest training one.
    """
    import tensorflow as tf

    model_dir = Path(model_dir)
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint {which!r}: choose one of {CHECKPOINTS}")
    if which == "best":
        best = _train_summary(model_dir).get("best") or {}
        path = model_dir / best.get("checkpoint", "best/model")
        if not Path(f"{path}.index").exists():
            validation = _train_summary(model_dir).get("validation") or {}
            if validation.get("enabled") is False:
                raise FileNotFoundError(
                    f"no best checkpoint in {model_dir}: validation during training was off because the "
                    f"{validation.get('split') or 'val'} split holds no image. Set split: val_fraction in "
                    "config.yaml (e.g. 0.1) and train again, or export the final checkpoint"
                )
            raise FileNotFoundError(
                f"no best checkpoint in {model_dir} (it is kept by the validation during training); "
                "train again or export the final checkpoint"
            )
        return str(path)
    final = _train_summary(model_dir).get("final_checkpoint")
    if final and Path(f"{model_dir / final}.index").exists():
        return str(model_dir / final)
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {model_dir}; run training first")
    return checkpoint


def checkpoint_label(model_dir: Path, which: str, checkpoint: str) -> str:
    """How artdet_model.json names the exported weights: ``ckpt-600`` or ``best (step 400, AP50 0.91)``."""
    summary = _train_summary(model_dir)
    if which == "best" and summary.get("best"):
        return f"best (step {summary['best']['step']}, AP50 {summary['best']['AP50']:.3f})"
    return summary.get("checkpoint") or Path(checkpoint).name


def export(
    pipeline: str | Path, model_dir: str | Path, label_map: str | Path, out_dir: str | Path, which: str = "final"
) -> Path:
    from official.vision.serving import export_saved_model_lib

    from artdet.train.pipeline_config import load_params

    params, header = load_params(pipeline)
    checkpoint = final_checkpoint(model_dir, which)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    size = list(params.task.model.input_size[:2])
    export_saved_model_lib.export_inference_graph(
        input_type="image_tensor",
        batch_size=None,  # any batch size, so that `artdet detect` can batch frames
        input_image_size=size,
        params=params,
        checkpoint_path=checkpoint,
        export_dir=str(out_dir),
    )
    shutil.copyfile(label_map, out_dir / "label_map.pbtxt")
    step = checkpoint_label(Path(model_dir), which, checkpoint)
    info = {"experiment": header["experiment"], "checkpoint": step, "input_size": size}
    (out_dir / "artdet_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
