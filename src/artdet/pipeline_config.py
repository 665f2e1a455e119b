"""Render a complete Model Garden experiment config (``pipeline.yaml``).

This replaces hand-editing line numbers of the tutorial's ``pipeline.config``:
a preset, the dataset's class count, the TFRecord paths and the training
settings of config.yaml are applied to a registered Model Garden experiment,
validated by Model Garden's own config classes, and written out whole. The
file alone is enough to rerun training (``artdet train --pipeline ...``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from artdet.presets import preset

# The split the validation during training scores (the ``best`` checkpoint is picked on it).
VALIDATION_SPLIT = "val"


def _deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def dotted_to_nested(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"task.model.head.num_convs": 4}`` -> ``{"task": {"model": {...}}}``."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _schedule(optimizer: str, lr: float, steps: int, warmup: int) -> dict[str, Any]:
    opt = {"type": optimizer, optimizer: {}}
    if optimizer == "sgd":
        opt["sgd"] = {"momentum": 0.9}
    return {
        "optimizer": opt,
        "learning_rate": {
            "type": "cosine",
            "cosine": {"initial_learning_rate": lr, "decay_steps": steps},
        },
        "warmup": {"type": "linear", "linear": {"warmup_steps": min(warmup, max(steps // 2, 0))}},
    }


def scaled_learning_rate(model: dict[str, Any], spec: dict[str, Any]) -> float:
    """The model's learning rate, or the preset's scaled linearly with the batch size.

    Presets give a learning rate for a reference batch; a user who halves the
    batch (a smaller GPU) gets half the rate unless they set one themselves.
    """
    if model.get("learning_rate") is not None:
        return float(model["learning_rate"])
    batch = int(model.get("batch_size", spec["batch_size"]))
    return float(spec["learning_rate"]) * batch / int(spec["batch_size"])


def render(
    model: dict[str, Any],
    num_classes: int,
    train_records: list[str],
    val_records: list[str],
    init: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full experiment config as a plain dict.

    ``model`` is one entry of config.yaml's ``models:`` list; ``num_classes``
    counts the dataset's classes (Model Garden adds the background itself via
    ``num_classes + 1``). ``val_records`` are what the validation during
    training reads (the val split, never the test split, which is kept for
    the final evaluation); none turns that validation off. ``init`` is a
    fetched pretrained checkpoint (:func:`artdet.checkpoints.fetch`);
    ``init_checkpoint:`` in the model entry names a local one instead.
    """
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401  (registers experiments)

    spec = preset(model["preset"])
    params = exp_factory.get_exp_config(spec["experiment"])
    size = int(model.get("input_size", spec.get("input_size", 320)))
    steps = int(model["train_steps"])
    batch = int(model.get("batch_size", spec["batch_size"]))
    steps_per_loop = max(1, min(int(model.get("steps_per_loop", 50)), steps))
    checkpoint_every = int(model.get("checkpoint_every", 100))
    checkpoint_every = max(steps_per_loop, checkpoint_every // steps_per_loop * steps_per_loop)
    # Validation runs after a train loop: every N steps (a multiple of steps_per_loop), 0 = at the end only.
    validate_every = int(model.get("validate_every", checkpoint_every))
    if validate_every > 0:
        validate_every = max(steps_per_loop, validate_every // steps_per_loop * steps_per_loop)
    lr = scaled_learning_rate(model, spec)
    init_checkpoint = model.get("init_checkpoint") or (init or {}).get("prefix")
    modules = model.get("init_checkpoint_modules") or (init or {}).get("modules") or ["backbone"]
    data = {
        "input_path": ",".join(train_records),
        "global_batch_size": batch,
        "dtype": "float32",
        "shuffle_buffer_size": 1000,
        "parser": {"aug_rand_hflip": True, "aug_scale_min": 0.8, "aug_scale_max": 1.2},
    }
    update = copy.deepcopy(spec["params"])
    _deep_update(
        update,
        {
            "runtime": {"mixed_precision_dtype": "float32", "distribution_strategy": "mirrored"},
            "task": {
                "init_checkpoint": init_checkpoint or None,
                "init_checkpoint_modules": modules,
                "annotation_file": None,
                "model": {"num_classes": num_classes + 1, "input_size": [size, size, 3]},
                "train_data": data,
                "validation_data": {
                    "input_path": ",".join(val_records),
                    "global_batch_size": 8,
                    "dtype": "float32",
                    "drop_remainder": False,
                },
            },
            "trainer": {
                "train_steps": steps,
                "steps_per_loop": steps_per_loop,
                "summary_interval": steps_per_loop,
                "checkpoint_interval": checkpoint_every,
                "validation_interval": validate_every,
                "validation_steps": -1,
                "max_to_keep": 3,
                "optimizer_config": _schedule(
                    model.get("optimizer", spec["optimizer"]), lr, steps, int(model.get("warmup_steps", 100))
                ),
            },
        },
    )
    _deep_update(update, dotted_to_nested(model.get("overrides") or {}))
    _override_strict(params, update)
    params.validate()
    max_level = params.task.model.max_level
    if size % (2**max_level):
        raise ValueError(
            f"input_size {size} of model {model['name']!r} must be a multiple of 2**max_level = {2**max_level}"
        )
    return params.as_dict()


def _override_strict(params: Any, update: dict[str, Any]) -> None:
    """Apply ``update``; an unknown key raises an error that names its dotted path."""
    try:
        params.override(update, is_strict=True)
    except KeyError as exc:
        raise ValueError(f"unknown Model Garden config key in overrides or preset: {exc}") from None


def load_params(path: str | Path):
    """Read a rendered ``pipeline.yaml`` back: the Model Garden ExperimentConfig and the ``artdet:`` header."""
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401

    data = yaml.safe_load(Path(path).read_text())
    header = data.pop("artdet", {})
    header.setdefault("experiment", "retinanet")
    params = exp_factory.get_exp_config(header["experiment"])
    params.override(data, is_strict=True)
    params.validate()
    return params, header


def write_pipeline(
    model: dict[str, Any],
    num_classes: int,
    train: list[str],
    val: list[str],
    out: str | Path,
    init: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    val_images: int | None = None,
) -> None:
    """Render and write ``pipeline.yaml``: an ``artdet:`` header, then the Model Garden config.

    ``classes`` (label-map order) name the per-class AP of the validation
    during training. ``val_images`` counts the images in the ``val``
    records (None: not counted): with 0 (``split: val_fraction: 0``, or a
    dataset too small to give val an image) the config reads no validation
    data and training runs without validation, rather than on another split.
    The header's ``validation:`` says which split validation reads and how
    many images it holds.
    """
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class names for {num_classes} classes")
    if val_images == 0:
        val = []
    rendered = render(model, num_classes, train, val, init)
    header = {
        "artdet": {
            "experiment": preset(model["preset"])["experiment"],
            "preset": model["preset"],
            "bn_recalibration_batches": int(model.get("bn_recalibration_batches", 50)),
            "mixed_precision": model.get("mixed_precision", "auto"),
            "pretrained": (init or {}).get("name"),
            "pretrained_sha256": (init or {}).get("sha256"),
            "classes": list(classes) if classes else None,
            "validation": {"split": VALIDATION_SPLIT, "images": val_images if val else 0},
        }
    }
    text = (
        "# Model Garden experiment config rendered by `artdet pipeline-config` from config.yaml.\n"
        "# Rerun training alone with: artdet train --pipeline THIS_FILE --model-dir DIR\n"
    )
    text += yaml.safe_dump(header, sort_keys=False) + yaml.safe_dump(rendered, sort_keys=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
