"""Train a detector from a rendered ``pipeline.yaml`` with TF Model Garden.

Model Garden's orbit controller does the work: it restores the newest
checkpoint in the model folder (so an interrupted run continues) and writes
TensorBoard summaries under ``<model_dir>/train``. Two train actions run after
every ``steps_per_loop`` steps: :class:`~artdet.train.progress.Progress` prints step, images/s, loss,
learning rate and ETA, and :class:`artdet.train.periodic_eval.PeriodicValidator` scores the
model on the val split every ``validation_interval`` steps and keeps the
``best`` checkpoint (Model Garden's built-in COCO evaluator crashes under
numpy 2, so it is not used). The test split is never read here: it is kept
for the evaluation of the exported model. With an empty val split there is
no validation (and no ``best``), and the log says why.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artdet.train.doctor import collect, mixed_precision_dtype
from artdet.train.hashing import file_sha256, update_from_file
from artdet.train.progress import Progress, tell
from artdet.train.schedule import PROBE_LOOPS, Measured, Settings, plan_budget

log = logging.getLogger(__name__)


def use_onednn_kernels() -> None:
    """Train with TensorFlow's oneDNN CPU kernels; call before TensorFlow is imported.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI/BF16
    or AMX. On the 2-core CPUs measured they train the ``ssd_mobilenet`` preset
    1.56x (AVX2) to 2.01x (AMD EPYC) as fast, 1.79x on an Intel Xeon with
    AVX-512 and AMX (``bench/train_speed.py``).
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


DISTRIBUTIONS = ("auto", "one_device", "mirrored", "multi_worker")


def _workers() -> int:
    """How many workers ``TF_CONFIG`` names (0 when it is unset)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return sum(len(config.get("cluster", {}).get(kind, [])) for kind in ("chief", "worker"))


@functools.cache
def _strategy(distribution: str = "auto"):
    """The ``tf.distribute`` strategy for ``models.<name>.distribution`` (one per process).

    ``mirrored`` copies the model onto every GPU of this machine (or, without
    GPUs, every logical CPU device, which is how the tests run it on one CPU)
    and averages the gradients; ``multi_worker`` does the same across the
    processes that ``TF_CONFIG`` names (one per node of a GPU cluster);
    ``auto`` is ``multi_worker`` when ``TF_CONFIG`` names several workers,
    ``mirrored`` with several GPUs, else one device. Built once per process and
    kept: a multi-worker strategy sets up the collective ops, which can happen only once.
    """
    import tensorflow as tf

    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution {distribution!r}: expected one of {', '.join(DISTRIBUTIONS)}")
    if distribution == "auto":
        # Physical devices: listing logical ones would start TensorFlow's runtime, after which a
        # multi-worker strategy can no longer be set up.
        several_gpus = len(tf.config.list_physical_devices("GPU")) > 1
        distribution = "multi_worker" if _workers() > 1 else "mirrored" if several_gpus else "one_device"
    if distribution == "multi_worker":
        if not _workers():
            raise ValueError(
                "distribution: multi_worker needs TF_CONFIG, the JSON that names every worker and this "
                'process\'s index: {"cluster": {"worker": ["node1:12345", "node2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if distribution == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def _strategy_name(strategy) -> str:
    """The public name of a strategy (TensorFlow's multi-worker class is CollectiveAllReduceStrategy)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def scale_to_replicas(params, schedule: dict, replicas: int) -> str | None:
    """Scale the global batch and the learning rate to the replicas; the reason for the log (None for one).

    ``batch_size`` is what each replica reads, so the global batch is
    ``batch_size x replicas`` and, by the linear scaling rule, the learning
    rate grows by the same factor (the warm-up spreads the jump). A length in
    epochs keeps its epochs, so it takes ``replicas`` times fewer steps; a
    length in steps keeps its steps (each sees ``replicas`` times the images).
    """
    if replicas <= 1:
        return None
    data = params.task.train_data
    per_replica = int(data.global_batch_size)
    params.override({"task": {"train_data": {"global_batch_size": per_replica * replicas}}}, is_strict=True)
    cosine = params.trainer.optimizer_config.learning_rate.cosine
    lr = float(cosine.initial_learning_rate) * replicas
    params.override(
        {"trainer": {"optimizer_config": {"learning_rate": {"cosine": {"initial_learning_rate": lr}}}}},
        is_strict=True,
    )
    steps = int(params.trainer.train_steps)
    if schedule.get("unit") == "epochs":
        steps = -(-steps // replicas)
        _apply_length(params, schedule, steps)
    return (
        f"{replicas} replicas x batch {per_replica} = global batch {per_replica * replicas}, "
        f"learning rate x{replicas} = {lr:.4g}, {steps} steps"
    )


def replica_weight_spread(model) -> float:
    """The largest difference between this process's replica copies of any trainable weight (0.0: in sync).

    Mirrored training keeps one copy per device and applies the same averaged
    gradient to each; a spread above rounding means the replicas diverged.
    (Batch-norm moving statistics are each replica's own, of its own images,
    and averaged when read or saved, so they are left out.)
    """
    spread = 0.0
    for variable in model.trainable_weights:
        copies = [v.numpy() for v in getattr(variable, "values", (variable,))]
        for other in copies[1:]:
            spread = max(spread, float(abs(other - copies[0]).max(initial=0.0)))
    return spread


def write_reproducibility(
    model_dir: Path, pipeline: str | Path, records: list[str], data_fingerprint: str, summary: dict
) -> Path:
    """Write ``reproducibility.json``: what produced this model, to trace a result back.

    The rendered config (a copy, ``pipeline.yaml``, beside it), the fingerprint of that
    config and the TFRecords' bytes (the one that decides whether checkpoints are stale), the
    sha256 and size of each record, the package versions and the machine (``artdet doctor
    --json``), and how training ran (replicas, precision, steps).
    """
    shutil.copyfile(pipeline, model_dir / "pipeline.yaml")
    files = {}
    for record in sorted(records):
        files[Path(record).name] = {"sha256": file_sha256(record), "bytes": Path(record).stat().st_size}
    machine = collect(model_dir)
    record = {
        "pipeline": "pipeline.yaml",
        "pipeline_sha256": hashlib.sha256(Path(pipeline).read_bytes()).hexdigest(),
        "data_fingerprint": data_fingerprint,
        "records": files,
        "packages": machine["packages"],
        "machine": machine,
        "training": {
            k: summary.get(k)
            for k in ("steps", "batch_size", "distribution", "replicas", "mixed_precision", "device", "seed")
        },
        "tf_config": json.loads(os.environ["TF_CONFIG"]) if os.environ.get("TF_CONFIG") else None,
    }
    out = model_dir / "reproducibility.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def weights_digest(model) -> str:
    """sha256 of the trainable weights (the first replica's copy): equal digests, equal models.

    Multi-worker workers each hold a copy; the same digest on every worker shows they stayed
    in sync (only the chief's checkpoints are kept to compare).
    """
    digest = hashlib.sha256()
    for variable in model.trainable_weights:
        digest.update(getattr(variable, "values", (variable,))[0].numpy().tobytes())
    return digest.hexdigest()


def is_chief() -> bool:
    """Whether this process writes the model folder: always, except a non-chief multi-worker worker."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if not task or "chief" in config.get("cluster", {}):
        return task.get("type", "chief") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def fingerprint(pipeline: str | Path, records: list[str]) -> str:
    """A hash of the rendered config and the bytes of the TFRecords it reads."""
    digest = hashlib.sha256(Path(pipeline).read_bytes())
    for record in sorted(records):
        update_from_file(digest, record)
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


def _measure_budget(controller, validator, progress, per_loop: int, model_dir: Path, started: float) -> Measured:
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


@dataclass
class _Run:
    """One training run's state, set up by :func:`_set_up` and read by the later steps.

    Model Garden's tasks keep this state on ``self``; here it is one object passed from step
    to step, so each step's inputs are named.
    """

    pipeline: str | Path
    model_dir: Path
    seed: int
    started: float
    params: Any
    header: dict
    records: list[str]
    data_fingerprint: str
    dtype: str
    plan: dict | None
    strategy: Any
    replicas: int
    task: Any
    trainer: Any
    planned_lr: Any
    start_step: int
    progress: Progress
    validation: dict
    validator: Any
    controller: Any

    @property
    def schedule(self) -> dict:
        return self.header.get("schedule") or {}

    @property
    def experiment(self) -> str:
        return self.header["experiment"]

    @property
    def batches(self) -> int:
        """Batch-norm recalibration batches (0: the trained statistics are kept)."""
        return int(self.header.get("bn_recalibration_batches", 0))

    @property
    def plan_path(self) -> Path:
        return self.model_dir / "plan.json"


def train(pipeline: str | Path, model_dir: str | Path, seed: int = 0) -> dict:
    """Train for the length the pipeline's schedule gives; return a summary written to ``train_summary.json``.

    A fixed length (epochs or train_steps, rendered into ``trainer.train_steps``)
    trains to its end unless early stopping (``patience``) ends it first. A
    time budget is planned here: a probe measures the speed, validation and
    checkpoint costs (:func:`_measure_budget`), :func:`artdet.train.schedule.plan_budget` fixes
    the steps, ``plan.json`` keeps the plan, and a resumed run uses it as it is.
    The budget counts from this function's start (TensorFlow's import included).

    The steps read like a Model Garden task's: set up the run, plan its length, run the
    loop, finish.
    """
    started = time.perf_counter()
    run = _set_up(pipeline, Path(model_dir), seed, started)
    start = time.perf_counter()
    stop_reason = None
    if run.validator is not None and run.start_step in {h["step"] for h in run.validator.history}:
        stop_reason = run.validator.stop_reason(run.start_step)
    with run.strategy.scope():
        if run.planned_lr is not None:
            stop_reason = _plan_length(run)
        stop_reason = _run_loop(run, stop_reason)
    return _finish(run, stop_reason, time.perf_counter() - start)


def _set_up(pipeline: str | Path, model_dir: Path, seed: int, started: float) -> _Run:
    """Load the config, seed, pick the model folder, precision and strategy; build the task, trainer and actions."""
    import numpy as np
    import tensorflow as tf
    from absl import logging as absl_logging
    from official.core import train_utils

    from artdet.train.pipeline_config import load_params

    absl_logging.set_verbosity(absl_logging.INFO)
    params, header = load_params(pipeline)
    distribution = header.get("distribution", "auto")
    if distribution == "multi_worker" or (distribution == "auto" and _workers() > 1):
        # Collective ops across workers can only be set up before TensorFlow runs anything.
        _strategy(distribution)
    _cpu_graph_options()
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    schedule = header.get("schedule") or {}
    model_dir = _worker_folder(model_dir)
    records = _records(params)
    data_fingerprint = fingerprint(pipeline, records)
    _set_aside_if_stale(model_dir, data_fingerprint)
    dtype = _set_precision(params, header)
    plan = _kept_plan(params, schedule, model_dir)
    strategy = _strategy(distribution)
    replicas = int(strategy.num_replicas_in_sync)
    scaled = scale_to_replicas(params, schedule, replicas)
    if scaled:
        tell(f"distribution | {_strategy_name(strategy)}: {scaled}")
    train_utils.serialize_config(params, str(model_dir))
    new_plan = schedule.get("unit") == "time_budget" and plan is None
    task, trainer, planned_lr = _build(params, schedule, model_dir, strategy, new_plan)
    resumed = tf.train.latest_checkpoint(str(model_dir))
    start_step = int(resumed.rsplit("-", 1)[1]) if resumed else 0
    if resumed:
        log.info("resuming from %s (step %d of %d)", resumed, start_step, params.trainer.train_steps)
    progress = Progress(
        start_step, params.trainer.train_steps, params.trainer.steps_per_loop, params.task.train_data.global_batch_size
    )
    validation = validation_split(params, header, pipeline)
    validator = _validator(params, header, model_dir, task, trainer, progress, validation)
    actions = [progress, validator] if validator else [progress]
    return _Run(
        pipeline=pipeline,
        model_dir=model_dir,
        seed=seed,
        started=started,
        params=params,
        header=header,
        records=records,
        data_fingerprint=data_fingerprint,
        dtype=dtype,
        plan=plan,
        strategy=strategy,
        replicas=replicas,
        task=task,
        trainer=trainer,
        planned_lr=planned_lr,
        start_step=start_step,
        progress=progress,
        validation=validation,
        validator=validator,
        controller=_controller(params, model_dir, strategy, task, trainer, actions),
    )


def _records(params) -> list[str]:
    """The TFRecord files the run reads (train and validation): what the fingerprint hashes."""
    return [
        path
        for pattern in (params.task.train_data.input_path, params.task.validation_data.input_path)
        for path in pattern.split(",")
        if path
    ]


def _worker_folder(model_dir: Path) -> Path:
    """The model folder, or a non-chief worker's own beside it.

    Every multi-worker worker saves checkpoints (a collective step); only the chief's are kept.
    """
    if is_chief():
        return model_dir
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    return model_dir.with_name(f"{model_dir.name}.worker-{index}")


def _set_precision(params, header: dict) -> str:
    """Set the compute dtype (``mixed_precision`` in the header) on the params and Keras; return it."""
    import tensorflow as tf
    from official.modeling import performance

    dtype = mixed_precision_dtype(header.get("mixed_precision", "auto"), tf.config.list_physical_devices("GPU"))
    params.runtime.mixed_precision_dtype = dtype
    if dtype == "float16":
        params.runtime.loss_scale = "dynamic"
    performance.set_mixed_precision_policy(dtype)
    log.info("compute dtype %s", dtype)
    return dtype


def _kept_plan(params, schedule: dict, model_dir: Path) -> dict | None:
    """A time budget's ``plan.json`` from an earlier start of this run, applied to the params (None: none yet)."""
    plan_path = model_dir / "plan.json"
    budget = schedule.get("unit") == "time_budget"
    plan = json.loads(plan_path.read_text()) if budget and plan_path.exists() else None
    if plan is not None:
        _apply_length(params, schedule, plan["train_steps"])
        log.info("plan | %s (kept from %s: a resumed run is not re-planned)", plan["reason"], plan_path)
    elif schedule and not budget:
        log.info("length | %s", schedule["reason"])
    return plan


def _build(params, schedule: dict, model_dir: Path, strategy, new_plan: bool):
    """The Model Garden task and trainer, under the strategy; with ``new_plan``, the planned learning rate too.

    The planned schedule replaces the optimizer's before the first step traces the train
    function; its total is set once the budget is planned.
    """
    from official.core import task_factory, train_utils

    planned_lr = None
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=str(model_dir))
        trainer = train_utils.create_trainer(params, task, train=True, evaluate=False)
        if new_plan:
            cosine = params.trainer.optimizer_config.learning_rate.cosine
            planned_lr = planned_learning_rate(cosine.initial_learning_rate, schedule["warmup_steps"], 10**9)
            trainer.optimizer.learning_rate = planned_lr
    return task, trainer, planned_lr


def _validator(params, header: dict, model_dir: Path, task, trainer, progress: Progress, validation: dict):
    """The validation train action, or None without a val split (where ``patience`` has nothing to stop on)."""
    from artdet.train.periodic_eval import PeriodicValidator

    schedule = header.get("schedule") or {}
    if not validation["enabled"]:
        if schedule.get("patience"):
            log.warning("patience %s has no effect: there is no validation to stop on", schedule["patience"])
        return None
    classes = header.get("classes") or [f"class {i}" for i in range(1, params.task.model.num_classes)]
    return PeriodicValidator(
        trainer,
        task,
        params,
        header["experiment"],
        model_dir,
        classes,
        int(header.get("bn_recalibration_batches", 0)),
        on_done=progress.exclude,
        split=validation["split"],
        patience=schedule.get("patience"),
    )


def _controller(params, model_dir: Path, strategy, task, trainer, actions: list):
    """Orbit's controller, from Model Garden's experiment runner, with the train actions."""
    from official.core import train_lib

    runner = train_lib.OrbitExperimentRunner(
        distribution_strategy=strategy,
        task=task,
        mode="train",
        params=params,
        model_dir=str(model_dir),
        train_actions=actions,
        trainer=trainer,
    )
    return runner.controller


def _plan_length(run: _Run) -> str | None:
    """Probe the speed, plan the time budget, and fix the run's length; return an early stop already reached."""
    from official.core import train_utils

    params, schedule, validator = run.params, run.schedule, run.validator
    log.info(
        "plan | time_budget %s: measuring the speed over %d loops of %d steps",
        schedule["time_budget"],
        PROBE_LOOPS,
        params.trainer.steps_per_loop,
    )
    if validator is not None:
        validator.set_schedule(None, 0)
    measured = _measure_budget(
        run.controller, validator, run.progress, params.trainer.steps_per_loop, run.model_dir, run.started
    )
    plan = plan_budget(
        schedule["budget_seconds"],
        measured,
        _settings(schedule),
        params.task.train_data.global_batch_size,
        schedule.get("train_images"),
        schedule["time_budget"],
    )
    _apply_length(params, schedule, plan["train_steps"])
    run.planned_lr.set_length(plan["warmup_steps"], plan["train_steps"])
    train_utils.serialize_config(params, str(run.model_dir))
    run.plan_path.write_text(json.dumps(plan, indent=2) + "\n")
    run.plan = plan
    tell(f"plan | {plan['reason']}")
    return validator.stop_reason(measured.done_steps) if validator is not None else None


def _run_loop(run: _Run, stop_reason: str | None) -> str | None:
    """Train to the planned total unless already stopped; return why training stopped early (None: it did not)."""
    import orbit
    import tensorflow as tf

    from artdet.train.periodic_eval import EarlyStop

    total = int(run.params.trainer.train_steps)
    if run.validator is not None:
        run.validator.set_schedule(total, int(run.params.trainer.validation_interval))
    run.progress.total = total
    if stop_reason:
        log.info("early stop | already stopped at step %d: %s", run.start_step, stop_reason)
        return stop_reason
    controller = run.controller
    try:
        controller.train(steps=total)
    except EarlyStop as stop:
        # Orbit left this loop's summaries unwritten and its checkpoint unsaved.
        controller.summary_manager.write_summaries(tf.nest.map_structure(orbit.utils.get_value, stop.output))
        controller.summary_manager.flush()
        controller.save_checkpoint()
        tell(f"early stop | step {stop.step} of {total}: {stop.reason}")
        return stop.reason
    return None


def _final_checkpoint(run: _Run, latest: str | None, step: int) -> str | None:
    """The ``final`` checkpoint with recalibrated batch-norm statistics (None without recalibration)."""
    if not latest or run.batches <= 0:
        return None
    final_prefix = run.model_dir / "final" / "model"
    if run.validator is not None and run.validator.last_step == step:
        # The validation at the last step recomputed the statistics of these very weights.
        return run.validator.write(final_prefix)
    from artdet.train.batch_norm import recalibrate

    return recalibrate(run.params, run.experiment, latest, run.batches, final_prefix)


def _finish(run: _Run, stop_reason: str | None, seconds: float) -> dict:
    """Write the final checkpoint, ``train_summary.json`` and ``reproducibility.json``; return the summary."""
    import tensorflow as tf

    params, validator, model_dir = run.params, run.validator, run.model_dir
    step = int(run.trainer.global_step.numpy())
    latest = tf.train.latest_checkpoint(str(model_dir))
    final = _final_checkpoint(run, latest, step)
    summary = {
        "experiment": run.experiment,
        "train_steps": int(params.trainer.train_steps),
        "steps": step,
        "stopped_early": bool(stop_reason),
        "stopped_at_step": step if stop_reason else None,
        "stop_reason": stop_reason,
        "length": run.plan["reason"] if run.plan else run.schedule.get("reason"),
        "batch_size": params.task.train_data.global_batch_size,
        "seconds": round(seconds, 1),
        "total_seconds": round(time.perf_counter() - run.started, 1),
        "checkpoint": Path(latest).name if latest else None,
        "final_checkpoint": str(Path(final).relative_to(model_dir)) if final else None,
        "bn_recalibration_batches": run.batches,
        "validation": run.validation,
        "best": validator.best if validator else None,
        "validations": len(validator.history) if validator else 0,
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "mixed_precision": run.dtype,
        "distribution": _strategy_name(run.strategy),
        "replicas": run.replicas,
        "replica_weight_spread": replica_weight_spread(run.trainer.model),
        "weights_sha256": weights_digest(run.trainer.model),
        "seed": run.seed,
    }
    if run.plan:
        summary["plan"] = run.plan
    (model_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_reproducibility(model_dir, run.pipeline, run.records, run.data_fingerprint, summary)
    log.info("training finished: %s", summary)
    return summary
