"""How long a model trains, and when it validates, saves and stops: pure functions, no TensorFlow.

A model's length is given in one of three units (config.yaml, ``models.<name>``):

- ``epochs``: passes over the training images, so the same setting suits 50 or
  50,000 images; steps = ceil(epochs x train images / batch);
- ``train_steps``: optimizer steps, whatever the data;
- ``time_budget``: wall-clock time (``"90s"``, ``"12m"``, ``"1.5h"``); ``artdet
  train`` measures the first steps and plans the steps that fit (:func:`plan_budget`).

Precedence: ``time_budget`` overrides ``train_steps`` and ``epochs`` (so a budget can
be tried without deleting the usual length); ``epochs`` together with
``train_steps`` is an error, since neither would be clearly the one meant.

Every schedule has the same shape: a linear warm-up to the full learning rate,
then a cosine decay that reaches zero at the last step. The warm-up does not
depend on the run's length, so the steps of a time budget's probe are steps of
the schedule planned after it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from artdet.defaults import default

# The length units in order of precedence.
UNITS = ("time_budget", "train_steps", "epochs")
# Defaults of the schedule settings, from the config schema.
DEFAULTS: dict[str, Any] = {
    key: default(f"models.*.{key}") for key in ("warmup_steps", "checkpoint_every", "steps_per_loop")
}
# The warm-up takes at most this share of a run, so a short run still decays.
MAX_WARMUP_FRACTION = 0.5
# A time budget's probe: this many train loops, the first of which (tracing the
# train function) is left out of the measured speed.
PROBE_LOOPS = 3
# Share of a time budget held back for speed changes the probe did not see.
BUDGET_RESERVE = 0.03

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    """A model's length settings are missing, contradictory or malformed (names the model and key)."""


def parse_duration(text: str, model: str = "?") -> float:
    """``"90s"``, ``"12m"``, ``"1.5h"`` -> seconds; anything else is an error naming the model."""
    match = _DURATION.match(str(text))
    seconds = float(match.group(1)) * _SECONDS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise ScheduleError(
            f"model {model!r}: time_budget {text!r} is not a positive number with unit s, m or h "
            "(e.g. '90s', '12m', '1.5h')"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as ``1h02m``, ``11m52s`` or ``48s`` for log lines."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def length_unit(model: dict[str, Any]) -> str:
    """Which unit sets the model's length (see the module docstring for the precedence).

    Also checks the validation settings, which are the other pair of keys that
    must not both be given. Errors name the model and the keys.
    """
    name = model.get("name", "?")
    given = [key for key in UNITS if model.get(key) is not None]
    if "epochs" in given and "train_steps" in given:
        raise ScheduleError(
            f"model {name!r}: set either epochs ({model['epochs']}) or train_steps ({model['train_steps']}), not both"
        )
    if not given:
        raise ScheduleError(f"model {name!r}: set its length with epochs, train_steps or time_budget")
    if model.get("validate_every") is not None and model.get("validations") is not None:
        raise ScheduleError(
            f"model {name!r}: set either validate_every (steps between validations) or validations "
            "(validations per run), not both"
        )
    if "time_budget" in given:
        parse_duration(model["time_budget"], name)
    return given[0]


def steps_for_epochs(epochs: float, train_images: int, batch_size: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``train_images`` at ``batch_size`` (global), rounded up."""
    if train_images <= 0:
        raise ScheduleError("the training TFRecords hold no images, so an epoch has no steps")
    return max(1, math.ceil(epochs * train_images / batch_size - 1e-9))


def loop_multiple(steps: int, steps_per_loop: int) -> int:
    """``steps`` rounded down to a whole number of train loops, at least one loop.

    Orbit runs actions (validation) and checkpoints only between loops.
    """
    return max(steps_per_loop, steps // steps_per_loop * steps_per_loop)


@dataclass(frozen=True)
class Settings:
    """A model's schedule settings, as configured (before they are fitted to a length)."""

    steps_per_loop: int
    warmup_steps: int
    checkpoint_every: int
    validate_every: int | None = None
    validations: int | None = None

    @classmethod
    def of(cls, model: dict[str, Any]) -> Settings:
        def get(key: str) -> int:
            value = model.get(key)
            return int(DEFAULTS[key] if value is None else value)

        return cls(
            steps_per_loop=get("steps_per_loop"),
            warmup_steps=get("warmup_steps"),
            checkpoint_every=get("checkpoint_every"),
            validate_every=None if model.get("validate_every") is None else int(model["validate_every"]),
            validations=None if model.get("validations") is None else int(model["validations"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fitted(settings: Settings, total: int) -> dict[str, int]:
    """The trainer's intervals and warm-up for a run of ``total`` steps.

    - ``steps_per_loop`` is at most the run;
    - checkpoints every ``checkpoint_every`` steps, a whole number of loops;
    - validation every ``validate_every`` steps (default: ``checkpoint_every``;
      0: only after the last step), or ``validations`` evenly spaced ones
      (the last after the last step; at most one per loop, so a short run may
      get fewer);
    - a warm-up of ``warmup_steps``, at most half the run.
    """
    per_loop = max(1, min(settings.steps_per_loop, total))
    checkpoint = loop_multiple(settings.checkpoint_every, per_loop)
    if settings.validations is not None:
        count = settings.validations
        interval = 0 if count <= 1 else math.ceil(total / count / per_loop) * per_loop
    else:
        every = checkpoint if settings.validate_every is None else settings.validate_every
        interval = loop_multiple(every, per_loop) if every > 0 else 0
    warmup = min(settings.warmup_steps, int(total * MAX_WARMUP_FRACTION))
    return {
        "train_steps": total,
        "steps_per_loop": per_loop,
        "checkpoint_interval": checkpoint,
        "validation_interval": interval,
        "warmup_steps": warmup,
    }


def validation_steps(total: int, interval: int, after: int = 0) -> list[int]:
    """The steps in (``after``, ``total``] at which the PeriodicValidator scores the model."""
    points = list(range(interval, total, interval)) if interval > 0 else []
    return [step for step in [*points, total] if step > after]


@dataclass(frozen=True)
class Length:
    """The chosen length of a run and why, for the log and ``pipeline.yaml``'s header."""

    unit: str
    steps: int
    reason: str


def choose_length(model: dict[str, Any], train_images: int | None, batch_size: int) -> Length:
    """The model's length in steps, from epochs or train_steps (a time budget is planned when training starts).

    For a time budget the steps are the probe's (:data:`PROBE_LOOPS` loops);
    ``artdet train`` plans the rest.
    """
    unit = length_unit(model)
    name = model.get("name", "?")
    epoch = f" of {train_images:,} images" if train_images else ""
    if unit == "time_budget":
        per_loop = Settings.of(model).steps_per_loop
        steps = PROBE_LOOPS * per_loop
        return Length(
            unit,
            steps,
            f"time_budget {model['time_budget']}: planned by `artdet train` after a probe of {steps} steps "
            f"(train/plan.json)",
        )
    if unit == "train_steps":
        steps = int(model["train_steps"])
        epochs = f" ({steps * batch_size / train_images:.1f} epochs{epoch})" if train_images else ""
        return Length(unit, steps, f"train_steps {steps:,}{epochs}")
    if train_images is None:
        raise ScheduleError(f"model {name!r}: epochs needs the number of training images")
    epochs = model["epochs"]
    steps = steps_for_epochs(float(epochs), train_images, batch_size)
    return Length(unit, steps, f"{epochs:g} epochs x {train_images:,} images / batch {batch_size} -> {steps:,} steps")


def should_stop(scores: list[float], patience: int | None) -> bool:
    """Early stopping: True when the last ``patience`` validations did not beat the best before them.

    ``scores`` are the validation AP50s in step order. An improvement is a
    strictly higher score, as for the ``best`` checkpoint. ``patience`` None or
    0 turns early stopping off.
    """
    if not patience or not scores:
        return False
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # the first time the best score was reached
    return len(scores) - 1 - best >= patience


@dataclass(frozen=True)
class Measured:
    """What a time budget's probe measured, in seconds."""

    elapsed: float  # since `artdet train` started: start-up, probe loops, probe validation, a checkpoint
    done_steps: int  # steps trained by the probe
    seconds_per_step: float  # steady training speed (the first, tracing, loop left out)
    measured_steps: int  # steps the speed was measured over
    validation: float  # one validation (batch-norm recalibration, detection, scoring)
    checkpoint: float  # one checkpoint save


def plan_budget(
    budget: float,
    measured: Measured,
    settings: Settings,
    batch_size: int,
    train_images: int | None = None,
    budget_text: str | None = None,
) -> dict[str, Any]:
    """The most steps whose training, validations and checkpoints end within ``budget`` seconds.

    The cost of ``total`` steps is what is already spent, plus the remaining
    steps at the measured speed, one validation per planned validation point
    (the last, after the last step, also gives the final model its batch-norm
    statistics), one checkpoint save per interval and the final one, and
    writing the final model (about a checkpoint). A reserve of
    :data:`BUDGET_RESERVE` of the budget is kept for speed changes. The result
    is what ``train/plan.json`` holds.
    """
    available = budget * (1 - BUDGET_RESERVE)
    done = measured.done_steps

    def cost(total: int) -> float:
        fit = fitted(settings, total)
        validations = len(validation_steps(total, fit["validation_interval"], after=done))
        checkpoints = (total - done) // fit["checkpoint_interval"] + 1
        return (
            measured.elapsed
            + (total - done) * measured.seconds_per_step
            + validations * measured.validation
            + (checkpoints + 1) * measured.checkpoint
        )

    spare = available - measured.elapsed
    total = done + max(0, int(spare / measured.seconds_per_step)) if measured.seconds_per_step > 0 else done
    while total > done and cost(total) > available:
        # Each validation or checkpoint removed from the run frees several steps: jump by the overshoot.
        over = cost(total) - available
        total -= max(1, int(over / measured.seconds_per_step))
    total = max(total, done)
    while cost(total + 1) <= available:  # the jumps above may overshoot by a validation's worth of steps
        total += 1
    fit = fitted(settings, total)
    validations = len(validation_steps(total, fit["validation_interval"], after=done))
    images_per_second = batch_size / measured.seconds_per_step if measured.seconds_per_step > 0 else 0.0
    text = budget_text or format_duration(budget)
    epochs = total * batch_size / train_images if train_images else None
    of_images = f" ({epochs:,.0f} epochs of {train_images:,} images)" if epochs is not None else ""
    ends = cost(total)
    reason = (
        f"time_budget {text}: {images_per_second:.1f} images/s measured over {measured.measured_steps} steps -> "
        f"{total:,} steps{of_images}, {validations} validation{'s' if validations != 1 else ''}, "
        f"ends ~{format_duration(ends)}"
    )
    if total == done:
        reason += " (the budget is spent by start-up and the probe: training ends with the probe)"
    return {
        "time_budget": text,
        "budget_seconds": budget,
        "images_per_second": round(images_per_second, 2),
        "measured_steps": measured.measured_steps,
        "seconds_per_step": round(measured.seconds_per_step, 4),
        "validation_seconds": round(measured.validation, 2),
        "checkpoint_seconds": round(measured.checkpoint, 2),
        "startup_and_probe_seconds": round(measured.elapsed, 1),
        "probe_steps": done,
        "train_steps": total,
        "epochs": round(epochs, 2) if epochs is not None else None,
        "validations": validations,
        **{k: v for k, v in fit.items() if k != "train_steps"},
        "planned_seconds": round(ends, 1),
        "reason": reason,
    }
