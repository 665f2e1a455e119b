"""Train a detector from a rendered ``pipeline.yaml`` with TF Model Garden.

Model Garden's orbit controller does the work: it restores the newest
checkpoint in the model folder (so an interrupted run continues) and writes
TensorBoard summaries under ``<model_dir>/train``. Two train actions run after
every ``steps_per_loop`` steps: :class:`~artdet.train.progress.Progress` prints step, images/s, loss,
learning rate and ETA, and :class:`artdet.train.periodic_eval.Validator` scores the
model on the val split every ``validation_interval`` steps and keeps the
``best`` checkpoint (Model Garden's built-in COCO evaluator crashes under
numpy 2, so it is not used). The test split is never read here: it is kept
for the evaluation of the exported model. With an empty val split there is
no validation (and no ``best``), and the log says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path

from artdet.train.progress import Progress, tell
from artdet.train.schedule import PROBE_LOOPS, Measured, Settings, plan_budget

log = logging.getLogger(__name__)


def use_onednn_kernels() -> None:
    """Train with TensorFlow's oneDNN CPU kernels; call before TensorFlow is imported.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI/BF16
    or AMX. On an AVX2 CPU (2 cores) they train the ``ssd_mobilenet`` preset
    at 11.3 instead of 7.3 images/s, 1.56x (``bench/train_speed.py``).
    ``TF_ENABLE_ONEDNN_OPTS=0`` in the environment still turns them off. Only
    the training process uses them: see :func:`_cpu_graph_options` for what
    they cost inference.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _cpu_graph_options() -> None:
    """Turn Grappler's op fusion (remapping) off when training on a CPU with oneDNN kernels.

    With oneDNN, the fused convolution + inference-mode batch norm that
    remapping makes ran MobileNetV2 ~17x slower (305 ms instead of 17 ms per
    192x192 image), which made validation during training take minutes;
    without remapping, training runs at 11.9 instead of 12.7 images/s. It has
    to be set before TensorFlow runs its first function.
    """
    import tensorflow as tf

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1" and not tf.config.list_physical_devices("GPU"):
        tf.config.optimizer.set_experimental_options({"remapping": False})


def _strategy(params):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1 and params.runtime.num_gpus > 1:
        return tf.distribute.MirroredStrategy()
    device = "/gpu:0" if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def mixed_precision_dtype(setting: str, gpus: list) -> str:
    """The compute dtype: ``auto`` is float16 on GPUs with tensor cores (compute capability >= 7.0)."""
    if setting != "auto":
        return setting
    if not gpus:
        return "float32"
    import tensorflow as tf

    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return "float16" if tuple(capability) >= (7, 0) else "float32"


def fingerprint(pipeline: str | Path, records: list[str]) -> str:
    """A hash of the rendered config and the bytes of the TFRecords it reads."""
    digest = hashlib.sha256(Path(pipeline).read_bytes())
    for record in sorted(records):
        with open(record, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _set_aside_if_stale(model_dir: Path, current: str) -> None:
    """Move checkpoints of another config or dataset aside, so training starts fresh.

    Nothing is deleted: the old folder is renamed ``<model_dir>.stale-N``.
    """
    stamp = model_dir / "fingerprint.txt"
    if stamp.exists() and stamp.read_text().strip() != current:
        n = 1
        while model_dir.with_name(f"{model_dir.name}.stale-{n}").exists():
            n += 1
        target = model_dir.with_name(f"{model_dir.name}.stale-{n}")
        shutil.move(str(model_dir), str(target))
        log.warning(
            "the config or the training data changed since the checkpoints in %s were written; "
            "moved them to %s and starting fresh",
            model_dir,
            target,
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")


def validation_split(params, header: dict, pipeline: str | Path) -> dict:
    """Which split the validation during training reads, how many images, and whether it runs.

    ``pipeline.yaml``'s header says it (:func:`artdet.train.pipeline_config.write_pipeline`);
    a config without validation data (an empty val split) turns validation off.
    """
    info = dict(header.get("validation") or {"split": None, "images": None})
    info["enabled"] = bool(params.task.validation_data.input_path)
    if not info["enabled"]:
        info["images"] = 0
        log.info(
            "validation during training is off: the val split holds no image (split: val_fraction is 0, "
            "or the dataset is too small to give it one), so no best checkpoint is kept; set split: "
            "val_fraction in config.yaml to validate. The test split is not used instead."
        )
    elif info["split"] is None:
        log.warning(
            "%s names no validation split (it predates the val split); validation reads %s. "
            "Render it again with `artdet pipeline-config --val ...` to validate on the val split",
            pipeline,
            params.task.validation_data.input_path,
        )
    else:
        log.info("validation during training reads the %s split (%s images)", info["split"], info["images"])
    return info


def planned_learning_rate(peak: float, warmup: int, total: int):
    """The rendered schedule (linear warm-up to ``peak``, cosine to 0 at ``total``) with its length in variables.

    Model Garden builds the schedule from fixed numbers before the first step,
    and the train function bakes them in when it is traced. A time budget's
    length is known only after the probe's steps have run, so the run is
    given this schedule instead: the same formula as Model Garden's
    ``LinearWarmup(CosineDecayWithOffset(offset=warmup))`` that
    :func:`artdet.train.pipeline_config.length_fields` renders, whose warm-up and
    total are variables that :meth:`set_length` changes without retracing.
    """
    import math

    import tensorflow as tf
    import tf_keras

    class PlannedLearningRate(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self) -> None:
            super().__init__()
            self.peak = float(peak)
            self.warmup = tf.Variable(float(warmup), trainable=False, dtype=tf.float32, name="planned_warmup")
            self.total = tf.Variable(float(total), trainable=False, dtype=tf.float32, name="planned_total")

        def set_length(self, warmup: int, total: int) -> None:
            self.warmup.assign(float(warmup))
            self.total.assign(float(total))

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            rising = self.peak * step / tf.maximum(self.warmup, 1.0)
            done = tf.minimum(step - self.warmup, self.total - self.warmup) / tf.maximum(self.total - self.warmup, 1.0)
            falling = self.peak * 0.5 * (1.0 + tf.cos(math.pi * done))
            return tf.where(step < self.warmup, rising, falling)

        def get_config(self) -> dict:
            return {"peak": self.peak, "warmup": float(self.warmup.numpy()), "total": float(self.total.numpy())}

    return PlannedLearningRate()


def _settings(schedule: dict) -> Settings:
    return Settings(**{k: schedule[k] for k in Settings.__dataclass_fields__})


def _apply_length(params, schedule: dict, steps: int) -> None:
    """Set the trainer's length, intervals and learning-rate schedule for a run of ``steps`` (a planned budget)."""
    from artdet.train.pipeline_config import trainer_fields

    lr = params.trainer.optimizer_config.learning_rate.cosine.initial_learning_rate
    params.override({"trainer": trainer_fields(_settings(schedule), lr, steps)}, is_strict=True)


def _probe(controller, validator, progress, per_loop: int, model_dir: Path, started: float) -> Measured:
    """Train :data:`PROBE_LOOPS` loops, validate and save a checkpoint, timing each.

    The first loop traces the train function and is left out of the speed.
    The first validation (recorded like the others) builds the validation
    model and traces its functions; a second, unrecorded one at the same step
    measures what each later validation costs. A checkpoint is written to a
    scratch folder to time one (orbit may already have saved this step's).
    """
    first = int(controller.global_step.numpy()) + per_loop
    end = first + (PROBE_LOOPS - 1) * per_loop
    progress.total = end
    controller.train(steps=first, checkpoint_at_completion=False)
    manager = controller.checkpoint_manager
    before = set(manager.checkpoints)
    start = time.perf_counter()
    controller.train(steps=end, checkpoint_at_completion=False)
    window = time.perf_counter() - start
    saved = len(set(manager.checkpoints) - before)
    controller.save_checkpoint()
    start = time.perf_counter()
    scratch = model_dir / "probe"
    manager.checkpoint.write(str(scratch / "ckpt"))
    checkpoint = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)
    # The plan counts checkpoints on their own: leave those orbit saved during the timed loops out.
    seconds_per_step = max(window - saved * checkpoint, window / 2) / (end - first)
    validation = 0.0  # nothing to validate without a val split
    if validator is not None:
        start = time.perf_counter()
        validator.validate(end)
        middle = time.perf_counter()
        validator.validate(end, record=False)
        validation = time.perf_counter() - middle
        progress.exclude(time.perf_counter() - start)
    return Measured(
        elapsed=time.perf_counter() - started,
        done_steps=end,
        seconds_per_step=seconds_per_step,
        measured_steps=end - first,
        validation=validation,
        checkpoint=checkpoint,
    )


def train(pipeline: str | Path, model_dir: str | Path, seed: int = 0) -> dict:
    """Train for the length the pipeline's schedule gives; return a summary written to ``train_summary.json``.

    A fixed length (epochs or train_steps, rendered into ``trainer.train_steps``)
    trains to its end unless early stopping (``patience``) ends it first. A
    time budget is planned here: a probe measures the speed, validation and
    checkpoint costs (:func:`_probe`), :func:`artdet.train.schedule.plan_budget` fixes
    the steps, ``plan.json`` keeps the plan, and a resumed run uses it as it is.
    The budget counts from this function's start (TensorFlow's import included).
    """
    started = time.perf_counter()
    import numpy as np
    import orbit
    import tensorflow as tf
    from absl import logging as absl_logging
    from official.core import task_factory, train_lib, train_utils

    from artdet.train.periodic_eval import EarlyStop, Validator
    from artdet.train.pipeline_config import load_params

    absl_logging.set_verbosity(absl_logging.INFO)
    _cpu_graph_options()
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    params, header = load_params(pipeline)
    schedule = header.get("schedule") or {}
    experiment = header["experiment"]
    model_dir = Path(model_dir)
    records = [
        path
        for pattern in (params.task.train_data.input_path, params.task.validation_data.input_path)
        for path in pattern.split(",")
        if path
    ]
    _set_aside_if_stale(model_dir, fingerprint(pipeline, records))
    from official.modeling import performance

    dtype = mixed_precision_dtype(header.get("mixed_precision", "auto"), tf.config.list_physical_devices("GPU"))
    params.runtime.mixed_precision_dtype = dtype
    if dtype == "float16":
        params.runtime.loss_scale = "dynamic"
    performance.set_mixed_precision_policy(dtype)
    log.info("compute dtype %s", dtype)
    budget = schedule.get("unit") == "time_budget"
    plan_path = model_dir / "plan.json"
    plan = json.loads(plan_path.read_text()) if budget and plan_path.exists() else None
    if plan is not None:
        _apply_length(params, schedule, plan["train_steps"])
        log.info("plan | %s (kept from %s: a resumed run is not re-planned)", plan["reason"], plan_path)
    elif schedule and not budget:
        log.info("length | %s", schedule["reason"])
    train_utils.serialize_config(params, str(model_dir))
    strategy = _strategy(params)
    planned_lr = None
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=str(model_dir))
        trainer = train_utils.create_trainer(params, task, train=True, evaluate=False)
        if budget and plan is None:
            # Before the first step traces the train function; the total is set once planned.
            cosine = params.trainer.optimizer_config.learning_rate.cosine
            planned_lr = planned_learning_rate(cosine.initial_learning_rate, schedule["warmup_steps"], 10**9)
            trainer.optimizer.learning_rate = planned_lr
    resumed = tf.train.latest_checkpoint(str(model_dir))
    start_step = int(resumed.rsplit("-", 1)[1]) if resumed else 0
    if resumed:
        log.info("resuming from %s (step %d of %d)", resumed, start_step, params.trainer.train_steps)
    progress = Progress(
        start_step, params.trainer.train_steps, params.trainer.steps_per_loop, params.task.train_data.global_batch_size
    )
    batches = int(header.get("bn_recalibration_batches", 0))
    classes = header.get("classes") or [f"class {i}" for i in range(1, params.task.model.num_classes)]
    validation = validation_split(params, header, pipeline)
    validator = None
    if validation["enabled"]:
        validator = Validator(
            trainer,
            task,
            params,
            experiment,
            model_dir,
            classes,
            batches,
            on_done=progress.exclude,
            split=validation["split"],
            patience=schedule.get("patience"),
        )
    elif schedule.get("patience"):
        log.warning("patience %s has no effect: there is no validation to stop on", schedule["patience"])
    runner = train_lib.OrbitExperimentRunner(
        distribution_strategy=strategy,
        task=task,
        mode="train",
        params=params,
        model_dir=str(model_dir),
        train_actions=[progress, validator] if validator else [progress],
        trainer=trainer,
    )
    controller = runner.controller
    start = time.perf_counter()
    stop_reason = None
    if validator is not None and start_step in {h["step"] for h in validator.history}:
        stop_reason = validator.stop_reason(start_step)
    with strategy.scope():
        if planned_lr is not None:
            log.info(
                "plan | time_budget %s: measuring the speed over %d loops of %d steps",
                schedule["time_budget"],
                PROBE_LOOPS,
                params.trainer.steps_per_loop,
            )
            if validator is not None:
                validator.set_schedule(None, 0)
            measured = _probe(controller, validator, progress, params.trainer.steps_per_loop, model_dir, started)
            plan = plan_budget(
                schedule["budget_seconds"],
                measured,
                _settings(schedule),
                params.task.train_data.global_batch_size,
                schedule.get("train_images"),
                schedule["time_budget"],
            )
            _apply_length(params, schedule, plan["train_steps"])
            planned_lr.set_length(plan["warmup_steps"], plan["train_steps"])
            train_utils.serialize_config(params, str(model_dir))
            plan_path.write_text(json.dumps(plan, indent=2) + "\n")
            tell(f"plan | {plan['reason']}")
            stop_reason = validator.stop_reason(measured.done_steps) if validator is not None else None
        total = int(params.trainer.train_steps)
        if validator is not None:
            validator.set_schedule(total, int(params.trainer.validation_interval))
        progress.total = total
        if stop_reason:
            log.info("early stop | already stopped at step %d: %s", start_step, stop_reason)
        else:
            try:
                controller.train(steps=total)
            except EarlyStop as stop:
                # Orbit left this loop's summaries unwritten and its checkpoint unsaved.
                controller.summary_manager.write_summaries(tf.nest.map_structure(orbit.utils.get_value, stop.output))
                controller.summary_manager.flush()
                controller.save_checkpoint()
                stop_reason = stop.reason
                tell(f"early stop | step {stop.step} of {total}: {stop.reason}")
    seconds = time.perf_counter() - start
    step = int(trainer.global_step.numpy())
    latest = tf.train.latest_checkpoint(str(model_dir))
    final = None
    if latest and batches > 0:
        final_prefix = model_dir / "final" / "model"
        if validator is not None and validator.last_step == step:
            # The validation at the last step recomputed the statistics of these very weights.
            final = validator.write(final_prefix)
        else:
            from artdet.train.batch_norm import recalibrate

            final = recalibrate(params, experiment, latest, batches, final_prefix)
    summary = {
        "experiment": experiment,
        "train_steps": total,
        "steps": step,
        "stopped_early": bool(stop_reason),
        "stopped_at_step": step if stop_reason else None,
        "stop_reason": stop_reason,
        "length": plan["reason"] if plan else schedule.get("reason"),
        "batch_size": params.task.train_data.global_batch_size,
        "seconds": round(seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "checkpoint": Path(latest).name if latest else None,
        "final_checkpoint": str(Path(final).relative_to(model_dir)) if final else None,
        "bn_recalibration_batches": batches,
        "validation": validation,
        "best": validator.best if validator else None,
        "validations": len(validator.history) if validator else 0,
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "mixed_precision": dtype,
        "seed": seed,
    }
    if plan:
        summary["plan"] = plan
    (model_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("training finished: %s", summary)
    return summary
