"""Render a complete Model Garden experiment config (``pipeline.yaml``).

This replaces hand-editing line numbers of the tutorial's ``pipeline.config``:
a preset, the dataset's class count, the TFRecord paths and the training
settings of config.yaml are applied to a registered Model Garden experiment,
validated by Model Garden's own config classes, and written out whole. The
file alone is enough to rerun training (``artdet train --pipeline ...``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from artdet.data.example_proto import count_records
from artdet.defaults import default
from artdet.train.presets import preset
from artdet.train.schedule import Length, Settings, choose_length, fitted, parse_duration

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


def _optimizer(optimizer: str) -> dict[str, Any]:
    opt = {"type": optimizer, optimizer: {}}
    if optimizer == "sgd":
        opt["sgd"] = {"momentum": 0.9}
    return opt


def length_fields(lr: float, steps: int, warmup: int) -> dict[str, Any]:
    """The learning-rate schedule: a linear warm-up from 0 to ``lr``, then a cosine decay to 0 at step ``steps``.

    The cosine starts after the warm-up (``offset``), so the warm-up ends at the
    full rate whatever the length: the steps of a time budget's probe are then
    steps of the schedule planned after it (:mod:`artdet.train.schedule`).
    """
    return {
        "learning_rate": {
            "type": "cosine",
            "cosine": {"initial_learning_rate": lr, "decay_steps": max(steps - warmup, 1), "offset": warmup},
        },
        "warmup": {"type": "linear", "linear": {"warmup_steps": warmup}},
    }


def trainer_fields(settings: Settings, lr: float, steps: int) -> dict[str, Any]:
    """``trainer:`` fields for a run of ``steps`` steps: the intervals and the learning-rate schedule.

    ``render`` uses it for a length known in advance; ``artdet train`` for the
    steps it planned for a time budget.
    """
    fit = fitted(settings, steps)
    return {
        "train_steps": steps,
        "steps_per_loop": fit["steps_per_loop"],
        "summary_interval": fit["steps_per_loop"],
        "checkpoint_interval": fit["checkpoint_interval"],
        "validation_interval": fit["validation_interval"],
        "optimizer_config": length_fields(lr, steps, fit["warmup_steps"]),
    }


# Training-time augmentation, config.yaml's `models.<name>.augment:`, by default as the schema says.
AUGMENT_DEFAULTS: dict[str, Any] = {key: default(f"models.*.augment.{key}") for key in ("hflip", "scale", "colour")}
# RandAugment's ops that change geometry or content rather than colour: left out of colour jitter.
_NOT_COLOUR = [
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Sharpness",
    "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout", "SolarizeAdd",
]  # fmt: skip


def parser_fields(augment: dict[str, Any] | None) -> dict[str, Any]:
    """Model Garden's RetinaNet parser fields for a model's ``augment:`` settings.

    ``hflip`` mirrors images at random (turn it off where mirroring changes
    the class: text, playing cards, left/right); ``scale`` is the random
    zoom range (the image is scaled, then cropped or padded to the input);
    ``colour`` > 0 applies one of RandAugment's brightness, contrast or
    colour-saturation changes at that magnitude (0..10) to 70% of the
    images, for photos taken under other light.
    """
    settings = {**AUGMENT_DEFAULTS, **(augment or {})}
    low, high = settings["scale"]
    fields: dict[str, Any] = {
        "aug_rand_hflip": bool(settings["hflip"]),
        "aug_scale_min": float(low),
        "aug_scale_max": float(high),
    }
    if settings["colour"]:
        fields["aug_type"] = {
            "type": "randaug",
            "randaug": {
                "num_layers": 1,
                "magnitude": float(settings["colour"]),
                "prob_to_apply": 0.7,
                "exclude_ops": _NOT_COLOUR,
            },
        }
    return fields


# Below this many pixels at the model input, a box is hard to find: the anchors' log says so.
SMALL_BOX_PX = 12


def fit_anchors(
    stats: dict[str, Any],
    input_size: int,
    min_level: int,
    max_level: int,
    num_scales: int = 3,
    anchor_size: float = 4.0,
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> dict[str, Any]:
    """Anchors for the boxes in ``stats.json`` (:mod:`artdet.data.stats`), and why.

    Model Garden's RetinaNet anchors span ``anchor_size * 2**min_level`` to
    ``anchor_size * 2**max_level * 2**((num_scales - 1) / num_scales)`` pixels
    of the model input (32 to 406 at the defaults). A box far smaller than
    the smallest anchor overlaps none by the matching IoU of 0.5 and is
    learned from one forced match only: BCCD's platelets, 20 px at 320, are
    such boxes. When the 5th percentile of box sizes is below the smallest
    anchor by more than a factor of sqrt 2, the anchors shrink only as far as
    those boxes need: the smallest anchor takes their size (``anchor_size``
    rounded down to a half). They move no further because each halving of
    ``anchor_size`` sends every box one feature level coarser: centring the
    span on chess pieces of 22-43 px (``anchor_size`` 1) put them on strides
    16-32 and cut the val AP50 at 600 steps from 0.83 (2.5) to 0.42
    (``bench/anchors.py``). Likewise, when the 95th
    percentile is above the largest anchor by more than sqrt 2, they grow
    only as far as those boxes need. When the same percentiles of the aspect
    ratio leave the anchors' ratios (by more than 1.25), the ratios become
    those percentiles. Otherwise the defaults stay: they are what was measured
    most. Only the train split's boxes count (``stats.json``'s ``train_boxes``;
    older files without it describe every split).
    """
    stats = stats.get("train_boxes", stats)
    if not stats.get("box_relative_size", {}).get("count", 1):
        return {"anchor_size": anchor_size, "aspect_ratios": list(aspect_ratios), "reason": "no train boxes: defaults"}
    width, height = stats["image_width_px"]["median"], stats["image_height_px"]["median"]
    to_input = math.sqrt(width * height) * input_size / max(width, height)
    low, high = stats["box_relative_size"]["p5"] * to_input, stats["box_relative_size"]["p95"] * to_input
    smallest, largest = 2**min_level, 2**max_level * 2 ** ((num_scales - 1) / num_scales)
    reasons = []
    fitted = anchor_size
    if low * math.sqrt(2) < anchor_size * smallest:
        fitted = max(0.5, math.floor(2 * low / smallest + 1e-9) / 2)  # 1e-9: 8 px / 8 is 1, not 0.5
        edge = f"the 5th-percentile box ({low:.0f} px) is below the smallest default anchor"
    elif high > anchor_size * largest * math.sqrt(2):
        fitted = min(16.0, math.ceil(2 * high / largest - 1e-9) / 2)
        edge = f"the 95th-percentile box ({high:.0f} px) is above the largest default anchor"
    if fitted != anchor_size:
        reasons.append(
            f"boxes of {low:.0f}-{high:.0f} px at input {input_size} (5th-95th percentile): {edge} "
            f"({anchor_size * smallest:.0f}-{anchor_size * largest:.0f} px): anchor_size {anchor_size:g} -> {fitted:g} "
            f"({fitted * smallest:.0f}-{fitted * largest:.0f} px)"
        )
        anchor_size = fitted
    else:
        reasons.append(f"boxes of {low:.0f}-{high:.0f} px fit the default anchor_size {anchor_size:g}")
    if low < SMALL_BOX_PX:
        larger = 64 * math.ceil(input_size * SMALL_BOX_PX / low / 64)
        reasons.append(
            f"the smallest boxes are {low:.0f} px at input {input_size}: input_size {larger} would give them "
            f"{SMALL_BOX_PX} px, at about {(larger / input_size) ** 2:.1f}x the time per step"
        )
    ratio = stats["box_aspect_ratio"]
    if ratio["p5"] * 1.25 < min(aspect_ratios) or ratio["p95"] > max(aspect_ratios) * 1.25:
        fitted_ratios = sorted({round(min(10.0, max(0.1, ratio[q])), 2) for q in ("p5", "median", "p95")})
        reasons.append(f"aspect ratios (w/h) {ratio['p5']:.2f}-{ratio['p95']:.2f}: anchors {fitted_ratios}")
        aspect_ratios = tuple(fitted_ratios)
    else:
        reasons.append(f"aspect ratios {ratio['p5']:.2f}-{ratio['p95']:.2f} fit the default {list(aspect_ratios)}")
    return {"anchor_size": anchor_size, "aspect_ratios": list(aspect_ratios), "reason": "; ".join(reasons)}


def scaled_learning_rate(model: dict[str, Any], spec: dict[str, Any]) -> float:
    """The model's learning rate, or the preset's scaled linearly with the batch size.

    Presets give a learning rate for a reference batch; a user who halves the
    batch (a smaller GPU) gets half the rate unless they set one themselves.
    """
    if model.get("learning_rate") is not None:
        return float(model["learning_rate"])
    batch = int(model.get("batch_size", spec["batch_size"]))
    return float(spec["learning_rate"]) * batch / int(spec["batch_size"])


def _apply_fitted_anchors(
    params: Any, model: dict[str, Any], box_stats: dict[str, Any] | None, size: int, notes: dict[str, str] | None
) -> None:
    """Set the anchors :func:`fit_anchors` picks for the train boxes in ``box_stats``; say why in ``notes``."""
    if box_stats is None:
        raise ValueError(
            f"model {model.get('name', '?')!r}: anchors: fit needs the dataset statistics "
            "(results/data/stats/stats.json; `artdet pipeline-config --stats`)"
        )
    anchor = params.task.model.anchor
    fitted = fit_anchors(
        box_stats,
        size,
        params.task.model.min_level,
        params.task.model.max_level,
        anchor.num_scales,
        anchor.anchor_size,
        tuple(anchor.aspect_ratios),
    )
    if notes is not None:
        notes["anchors"] = fitted["reason"]
    fields = {"anchor_size": fitted["anchor_size"], "aspect_ratios": fitted["aspect_ratios"]}
    _override_strict(params, {"task": {"model": {"anchor": fields}}})


def _trainer(model: dict[str, Any], spec: dict[str, Any], steps: int) -> dict[str, Any]:
    """The trainer block: the schedule's fields for ``steps`` and the preset's (or the model's) optimizer."""
    trainer = trainer_fields(Settings.of(model), scaled_learning_rate(model, spec), steps)
    trainer["optimizer_config"] = {
        "optimizer": _optimizer(model.get("optimizer", spec["optimizer"])),
        **trainer["optimizer_config"],
    }
    return trainer


def render(
    model: dict[str, Any],
    num_classes: int,
    train_records: list[str],
    val_records: list[str],
    init: dict[str, Any] | None = None,
    train_images: int | None = None,
    box_stats: dict[str, Any] | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The full experiment config as a plain dict.

    ``model`` is one entry of config.yaml's ``models:`` list; ``num_classes``
    counts the dataset's classes (Model Garden adds the background itself via
    ``num_classes + 1``). ``val_records`` are what the validation during
    training reads (the val split, never the test split, which is kept for
    the final evaluation); none turns that validation off. ``init`` is a
    fetched pretrained checkpoint (:func:`artdet.train.checkpoints.fetch`);
    ``init_checkpoint:`` in the model entry names a local one instead.
    ``train_images`` (the examples in ``train_records``) turns ``epochs``
    into steps; it is needed only then. ``box_stats`` (``stats.json``) fits
    the anchors to the boxes for a model with ``anchors: fit``
    (:func:`fit_anchors`); ``notes``, when given, receives why (``anchors``).
    """
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401  (registers experiments)

    spec = preset(model["preset"])
    params = exp_factory.get_exp_config(spec["experiment"])
    size = int(model.get("input_size", spec.get("input_size", 320)))
    batch = int(model.get("batch_size", spec["batch_size"]))
    trainer = _trainer(model, spec, choose_length(model, train_images, batch).steps)
    init_checkpoint = model.get("init_checkpoint") or (init or {}).get("prefix")
    modules = model.get("init_checkpoint_modules") or (init or {}).get("modules") or ["backbone"]
    data = {
        "input_path": ",".join(train_records),
        "global_batch_size": batch,
        "dtype": "float32",
        "shuffle_buffer_size": 1000,
        "parser": parser_fields(model.get("augment")),
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
            "trainer": {**trainer, "validation_steps": -1, "max_to_keep": 3},
        },
    )
    overrides = dotted_to_nested(model.get("overrides") or {})
    _deep_update(update, overrides)
    _override_strict(params, update)
    if model.get("anchors", "default") == "fit":
        _apply_fitted_anchors(params, model, box_stats, size, notes)
        _override_strict(params, overrides)  # a user's own anchor settings still win
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
    # Files rendered before the schedule block: a fixed train_steps, no early stopping.
    header.setdefault("schedule", None)
    params = exp_factory.get_exp_config(header["experiment"])
    params.override(data, is_strict=True)
    params.validate()
    return params, header


def schedule_header(
    model: dict[str, Any], train_images: int | None, batch_size: int, reserved_seconds: float = 0.0
) -> dict[str, Any]:
    """The ``schedule:`` block of ``pipeline.yaml``'s header: how the length was chosen, and what
    ``artdet train`` needs to plan a time budget and to stop early.

    ``reserved_seconds`` is the part of a time budget already spent on the model elsewhere (a
    two-stage model's classifier): the detector plans within what is left.
    """
    length = choose_length(model, train_images, batch_size)
    budget = model.get("time_budget") if length.unit == "time_budget" else None
    seconds = parse_duration(budget, model.get("name", "?")) if budget is not None else None
    if seconds is not None and reserved_seconds:
        seconds = max(1.0, seconds - reserved_seconds)
    return {
        "unit": length.unit,
        "epochs": model.get("epochs") if length.unit == "epochs" else None,
        "time_budget": str(budget) if budget is not None else None,
        "budget_seconds": seconds,
        "reserved_seconds": round(reserved_seconds, 1) if budget is not None else None,
        "train_images": train_images,
        "steps": length.steps,
        "reason": length.reason,
        "patience": model.get("patience") or None,
        **Settings.of(model).as_dict(),
    }


# The one class of a two-stage model's detector.
CLASS_AGNOSTIC_NAME = "object"


def write_class_agnostic_map(classes: list[str], path: str | Path) -> None:
    """Model Garden's CSV label map (``id,name`` rows) that reads every class name as class 1."""
    import csv

    if not classes:
        raise ValueError("a class-agnostic detector needs the dataset's class names (the label map)")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        for name in classes:
            writer.writerow([1, name])


def write_pipeline(
    model: dict[str, Any],
    num_classes: int,
    train: list[str],
    val: list[str],
    out: str | Path,
    init: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    val_images: int | None = None,
    train_images: int | None = None,
    box_stats: dict[str, Any] | None = None,
    class_agnostic: bool = False,
    reserved_seconds: float = 0.0,
) -> Length:
    """Render and write ``pipeline.yaml``: an ``artdet:`` header, then the Model Garden config.

    ``classes`` (label-map order) name the per-class AP of the validation
    during training. ``val_images`` counts the images in the ``val``
    records (None: not counted): with 0 (``split: val_fraction: 0``, or a
    dataset too small to give val an image) the config reads no validation
    data and training runs without validation, rather than on another split.
    The header's ``validation:`` says which split validation reads and how
    many images it holds. ``train_images`` is counted from the ``train``
    records when not given (a fast scan of the record framing). ``box_stats``
    (``stats.json``) is needed by ``anchors: fit``; the header's ``anchors:``
    says what was fitted and why. ``class_agnostic`` renders the detector of a two-stage model:
    one class, every labelled box read as it through Model Garden's label-map decoder (a CSV
    beside ``out`` that maps each class name to 1), while the header's ``two_stage:`` keeps the
    real classes for the classifier and every output; ``reserved_seconds`` (the classifier's
    time) comes off a time budget. Returns the chosen length, for the log.
    """
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class names for {num_classes} classes")
    if val_images == 0:
        val = []
    if train_images is None:
        train_images = count_records(train)
    notes: dict[str, str] = {}
    two_stage = None
    if class_agnostic:
        label_csv = Path(out).with_name("class_agnostic.csv").resolve()
        write_class_agnostic_map(classes or [], label_csv)
        decoder = {"decoder": {"type": "label_map_decoder", "label_map_decoder": {"label_map": str(label_csv)}}}
        overrides = {"task.train_data.decoder": decoder["decoder"], "task.validation_data.decoder": decoder["decoder"]}
        model = {**model, "overrides": {**(model.get("overrides") or {}), **overrides}}
        two_stage = {"classes": list(classes or []), "label_map_csv": label_csv.name}
        num_classes, classes = 1, [CLASS_AGNOSTIC_NAME]
    rendered = render(model, num_classes, train, val, init, train_images, box_stats, notes)
    schedule = schedule_header(
        model, train_images, rendered["task"]["train_data"]["global_batch_size"], reserved_seconds
    )
    header = {
        "artdet": {
            "experiment": preset(model["preset"])["experiment"],
            "preset": model["preset"],
            "bn_recalibration_batches": int(model.get("bn_recalibration_batches", 50)),
            "mixed_precision": model.get("mixed_precision", "auto"),
            "distribution": model.get("distribution", default("models.*.distribution")),
            "pretrained": (init or {}).get("name"),
            "pretrained_sha256": (init or {}).get("sha256"),
            "classes": list(classes) if classes else None,
            "validation": {"split": VALIDATION_SPLIT, "images": val_images if val else 0},
            "schedule": schedule,
            "anchors": notes.get("anchors", "Model Garden's defaults"),
            "two_stage": two_stage,
        }
    }
    text = (
        "# Model Garden experiment config rendered by `artdet pipeline-config` from config.yaml.\n"
        "# Rerun training alone with: artdet train --pipeline THIS_FILE --model-dir DIR\n"
    )
    if schedule["unit"] == "time_budget":
        text += (
            "# With a time_budget, trainer.train_steps is the probe's length; `artdet train` plans the rest\n"
            "# and writes the plan to DIR/plan.json.\n"
        )
    text += yaml.safe_dump(header, sort_keys=False) + yaml.safe_dump(rendered, sort_keys=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return Length(schedule["unit"], schedule["steps"], schedule["reason"])
