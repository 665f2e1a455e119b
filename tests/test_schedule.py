"""Training length: epochs -> steps, the precedence of the units, time-budget plans and early stopping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from artdet.data.example_proto import RecordWriter, count_records
from artdet.defaults import SCHEMA_PATH
from artdet.train.schedule import (
    BUDGET_RESERVE,
    DEFAULTS,
    Measured,
    ScheduleError,
    Settings,
    choose_length,
    fitted,
    format_duration,
    length_unit,
    parse_duration,
    plan_budget,
    should_stop,
    steps_for_epochs,
    validation_steps,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("epochs", "images", "batch", "steps"),
    [(17, 288, 8, 612), (16, 302, 8, 604), (1, 50, 8, 7), (2.5, 10, 4, 7), (1, 8, 8, 1), (0.01, 10, 8, 1)],
)
def test_epochs_become_steps_rounded_up(epochs, images, batch, steps) -> None:
    assert steps_for_epochs(epochs, images, batch) == steps


def test_length_says_what_was_chosen_and_why() -> None:
    model = {"name": "m", "epochs": 17}
    assert choose_length(model, 288, 8).reason == "17 epochs x 288 images / batch 8 -> 612 steps"
    assert choose_length(model, 288, 8).steps == 612
    steps = choose_length({"name": "m", "train_steps": 600}, 288, 8)
    assert steps.reason == "train_steps 600 (16.7 epochs of 288 images)"
    budget = choose_length({"name": "m", "time_budget": "12m", "steps_per_loop": 20}, 288, 8)
    assert budget.unit == "time_budget" and budget.steps == 60 and "probe of 60 steps" in budget.reason


def test_time_budget_wins_and_epochs_with_train_steps_is_an_error() -> None:
    assert length_unit({"time_budget": "90s", "epochs": 3}) == "time_budget"
    assert length_unit({"time_budget": "90s", "train_steps": 3}) == "time_budget"
    assert length_unit({"train_steps": 3}) == "train_steps"
    assert length_unit({"epochs": 3, "train_steps": None}) == "epochs"
    with pytest.raises(ScheduleError, match=r"model 'tiny': set either epochs \(3\) or train_steps \(600\), not both"):
        length_unit({"name": "tiny", "epochs": 3, "train_steps": 600})
    with pytest.raises(ScheduleError, match="model 'tiny': set its length with epochs, train_steps or time_budget"):
        length_unit({"name": "tiny", "batch_size": 8})
    with pytest.raises(ScheduleError, match=r"model 'tiny': set either validate_every .* or validations"):
        length_unit({"name": "tiny", "epochs": 3, "validate_every": 100, "validations": 3})
    with pytest.raises(ScheduleError, match="model 'tiny': time_budget '12' is not a positive number with unit"):
        length_unit({"name": "tiny", "time_budget": "12"})


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("12m", 720), ("1.5h", 5400), (" 2 m ", 120), (".5m", 30)])
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["12", "0m", "-1m", "1d", "", "m", "1.5 hours"])
def test_bad_durations_name_the_model_and_key(text) -> None:
    with pytest.raises(ScheduleError, match=f"model 'x': time_budget {text!r}"):
        parse_duration(text, "x")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (48, 712, 3720, 0.4)] == ["48s", "11m52s", "1h02m", "0s"]


@pytest.mark.parametrize(("total", "count"), [(612, 3), (2000, 5), (90, 3), (10_000, 7)])
def test_validations_per_run_are_spread_over_any_length(total, count) -> None:
    fit = fitted(Settings(steps_per_loop=20, warmup_steps=100, checkpoint_every=100, validations=count), total)
    points = validation_steps(total, fit["validation_interval"])
    assert points[-1] == total and len(points) == count
    assert all(p % 20 == 0 for p in points[:-1])


def test_validations_at_most_one_per_loop_and_warmup_at_most_half() -> None:
    fit = fitted(Settings(steps_per_loop=20, warmup_steps=100, checkpoint_every=100, validations=10), 60)
    assert validation_steps(60, fit["validation_interval"]) == [20, 40, 60]
    assert fit["warmup_steps"] == 30
    assert fitted(Settings(20, 100, 100, validate_every=0), 600)["validation_interval"] == 0
    assert fitted(Settings(20, 100, 100), 600)["validation_interval"] == 100  # validate_every defaults to checkpoints


@pytest.mark.parametrize(
    ("scores", "patience", "stop"),
    [
        ([0.1, 0.2, 0.3], 1, False),
        ([0.1, 0.3, 0.3], 1, True),  # equal is not better
        ([0.1, 0.3, 0.2], 2, False),
        ([0.1, 0.3, 0.2, 0.25], 2, True),
        ([0.0, 0.0], 1, True),
        ([0.5, 0.1, 0.2, 0.3], 3, True),
        ([0.5, 0.1, 0.2, 0.3], None, False),
        ([0.5, 0.1, 0.2, 0.3], 0, False),
        ([], 1, False),
    ],
)
def test_early_stopping_decision(scores, patience, stop) -> None:
    assert should_stop(scores, patience) is stop


def _measured(**extra) -> Measured:
    values = {
        "elapsed": 60.0,
        "done_steps": 60,
        "seconds_per_step": 0.7,
        "measured_steps": 40,
        "validation": 10.0,
        "checkpoint": 0.5,
    }
    return Measured(**{**values, **extra})


def test_budget_plan_fills_the_budget_with_steps_validations_and_checkpoints() -> None:
    settings = Settings(steps_per_loop=20, warmup_steps=100, checkpoint_every=100, validations=5)
    plan = plan_budget(720, _measured(), settings, 8, 288, "12m")
    assert plan["train_steps"] > 60 and plan["validations"] == 5
    spent = 60 + (plan["train_steps"] - 60) * 0.7 + 5 * 10 + ((plan["train_steps"] - 60) // 100 + 2) * 0.5
    assert spent <= 720 * (1 - BUDGET_RESERVE) and plan["planned_seconds"] == pytest.approx(spent, abs=0.1)
    assert spent > 720 * (1 - BUDGET_RESERVE) - 2 * 0.7 - 0.5, "the plan leaves time unused"
    assert plan["images_per_second"] == pytest.approx(8 / 0.7, abs=0.01)
    assert plan["reason"] == (
        f"time_budget 12m: 11.4 images/s measured over 40 steps -> {plan['train_steps']:,} steps "
        f"({plan['train_steps'] * 8 / 288:.0f} epochs of 288 images), 5 validations, "
        f"ends ~{format_duration(spent)}"
    )
    assert plan["warmup_steps"] == 100 and plan["validation_interval"] % 20 == 0


def test_budget_with_validate_every_counts_the_validations_it_plans() -> None:
    settings = Settings(steps_per_loop=10, warmup_steps=20, checkpoint_every=50, validate_every=50)
    plan = plan_budget(300, _measured(elapsed=30, done_steps=30, validation=5), settings, 4)
    steps = validation_steps(plan["train_steps"], 50, after=30)
    assert plan["validations"] == len(steps)
    assert plan["epochs"] is None and "epochs of" not in plan["reason"]


def test_a_budget_spent_by_the_probe_ends_with_the_probe() -> None:
    plan = plan_budget(50, _measured(), Settings(20, 100, 100), 8, 288, "50s")
    assert plan["train_steps"] == 60
    assert "the budget is spent by start-up and the probe" in plan["reason"]


def test_schema_states_the_schedule_defaults() -> None:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    model = schema["properties"]["models"]["additionalProperties"]["properties"]
    assert {key: model[key]["default"] for key in DEFAULTS} == DEFAULTS
    assert model["patience"]["default"] is None


def test_shipped_config_uses_epochs() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name, model in config["models"].items():
        assert length_unit({"name": name, **model}) == "epochs"


def test_records_are_counted_without_tensorflow(tmp_path: Path) -> None:
    paths = []
    for i, count in enumerate((3, 0, 5)):
        paths.append(tmp_path / f"r{i}.tfrecord")
        with RecordWriter(paths[-1]) as writer:
            for j in range(count):
                writer.write(b"x" * (j * 100 + 1))
    assert count_records(paths) == 8
    paths[2].write_bytes(paths[2].read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated TFRecord file"):
        count_records(paths)
