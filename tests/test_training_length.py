"""Real (tiny) training runs: a time budget planned from the measured speed, and early stopping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# A small, fast model: 128 px, batch 4, loops of 5 steps, on 16 generated images.
TINY = {
    "name": "tiny",
    "preset": "ssd_mobilenet",
    "input_size": 128,
    "batch_size": 4,
    "learning_rate": 0.004,
    "warmup_steps": 15,
    "steps_per_loop": 5,
    "checkpoint_every": 10,
    "bn_recalibration_batches": 1,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from artdet.data.demo import generate
    from artdet.data.label_map import read_label_map
    from artdet.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("length")
    generate(root / "photos", count=16, seed=9)
    prepare_dataset(root / "photos", root / "data", max_side=128, test_fraction=0.25)
    labels = read_label_map(root / "data" / "label_map.pbtxt")
    return {
        "root": root,
        "train": [str(root / "data" / "train.record")],
        "test": [str(root / "data" / "test.record")],
        "classes": [labels[k] for k in sorted(labels)],
    }


def _train(data: dict, model: dict, name: str, env: dict) -> tuple[Path, str]:
    from artdet.train.pipeline_config import write_pipeline

    pipeline = data["root"] / f"{name}.yaml"
    write_pipeline(model, len(data["classes"]), data["train"], data["test"], pipeline, classes=data["classes"])
    model_dir = data["root"] / name
    run = subprocess.run(
        [sys.executable, "-m", "artdet", "train", "--pipeline", str(pipeline), "--model-dir", str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return model_dir, run.stderr


@pytest.mark.slow
def test_time_budget_plans_a_schedule_that_finishes(data: dict, venv_env: dict) -> None:
    """The run trains exactly the planned steps and its cosine reaches zero at the last one.

    How close the run ends to the budget depends on the machine: bench/, not a test. The
    budget leaves room for a slow or busy machine: start-up and the probe took 58 s on one,
    and a budget they spend leaves nothing to plan.
    """
    from artdet.train.curves import read_scalars

    model = {**TINY, "time_budget": "150s", "validations": 2}
    model_dir, log = _train(data, model, "budget", venv_env)
    plan = json.loads((model_dir / "plan.json").read_text())
    for key in ("budget_seconds", "images_per_second", "probe_steps", "train_steps", "validations", "reason"):
        assert key in plan
    assert plan["budget_seconds"] == 150 and plan["probe_steps"] == 15
    assert plan["train_steps"] > plan["probe_steps"], f"the probe spent the budget on this machine: {plan}"
    assert f"plan | {plan['reason']}" in log
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["steps"] == summary["train_steps"] == plan["train_steps"]
    assert summary["checkpoint"] == f"ckpt-{plan['train_steps']}" and summary["final_checkpoint"] == "final/model"
    assert not summary["stopped_early"] and summary["plan"] == plan
    # The probe's validation, then the planned ones, the last after the last step.
    steps = [h["step"] for h in json.loads((model_dir / "validation.json").read_text())]
    assert steps[0] == plan["probe_steps"] and steps[-1] == plan["train_steps"]
    assert len(steps) == 1 + plan["validations"]
    rates = dict(read_scalars(model_dir / "train")["learning_rate"])
    assert max(rates) == plan["train_steps"]
    assert rates[max(rates)] == pytest.approx(0.0, abs=1e-7), "the cosine did not finish"
    assert max(rates.values()) == pytest.approx(0.004, rel=0.05)


@pytest.mark.slow
def test_early_stopping_ends_training_and_still_writes_the_final_model(data: dict, venv_env: dict) -> None:
    """Validations that cannot improve (no box scores 0.99, so AP50 stays 0) stop a run with patience 1."""
    model = {
        **TINY,
        "train_steps": 60,
        "validate_every": 5,
        "patience": 1,
        "overrides": {"task.model.detection_generator.pre_nms_score_threshold": 0.99},
    }
    model_dir, log = _train(data, model, "patience", venv_env)
    summary = json.loads((model_dir / "train_summary.json").read_text())
    assert summary["stopped_early"] and summary["stopped_at_step"] == summary["steps"] == 10
    assert summary["train_steps"] == 60 and summary["checkpoint"] == "ckpt-10"
    assert summary["final_checkpoint"] == "final/model" and (model_dir / "final" / "model.index").exists()
    assert [h["step"] for h in json.loads((model_dir / "validation.json").read_text())] == [5, 10]
    assert "early stop | step 10 of 60: validation AP50 has not improved for 1 validation" in log
