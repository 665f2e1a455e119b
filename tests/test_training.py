"""Training survives interruption, restarts fresh when the data changes, and reports progress."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import snakemake, snakemake_command

RESUME_CONFIG = {
    "dataset": "photos",
    "classes": [],
    "resize": {"max_side": 128, "max_bytes": 200000},
    "split": {"test_fraction": 0.25, "seed": 0},
    "train_models": ["tiny"],
    "models": {
        "tiny": {
            "preset": "ssd_mobilenet",
            "input_size": 128,
            "batch_size": 4,
            "train_steps": 60,
            "warmup_steps": 5,
            "steps_per_loop": 5,
            "checkpoint_every": 10,
            "bn_recalibration_batches": 2,
        }
    },
}
SUMMARY = "results/tiny/train/train_summary.json"


def _checkpoints(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in folder.glob("ckpt-*.index"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    from artdet.demo_data import generate

    generate(tmp_path / "photos", count=16, seed=9)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(RESUME_CONFIG))
    return tmp_path


@pytest.mark.slow
def test_interrupted_training_resumes_from_its_last_checkpoint(workdir: Path, venv_env: dict) -> None:
    command = snakemake_command(workdir, SUMMARY)
    process = subprocess.Popen(
        command, env=venv_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    train_dir = workdir / "results" / "tiny" / "train"
    deadline = time.time() + 600
    while time.time() < deadline and not [s for s in _checkpoints(train_dir) if s >= 20]:
        assert process.poll() is None, "the workflow ended before it could be interrupted"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl+C reaches the whole foreground process group
    process.wait(timeout=120)
    assert not (workdir / SUMMARY).exists()
    saved = max(_checkpoints(train_dir))
    assert 20 <= saved < 60

    snakemake(workdir, venv_env, SUMMARY)
    log = (workdir / "results" / "logs" / "tiny" / "train.log").read_text()
    assert f"resuming from {train_dir.relative_to(workdir)}/ckpt-{saved} (step {saved} of 60)" in log
    assert f"train | step: {saved:6d} | training until step 60" in log
    assert "progress | step 60/60" in log
    summary = json.loads((workdir / SUMMARY).read_text())
    assert summary["checkpoint"] == "ckpt-60"


@pytest.mark.slow
def test_changed_data_moves_old_checkpoints_aside(workdir: Path, venv_env: dict) -> None:
    snakemake(workdir, venv_env, SUMMARY)
    train_dir = workdir / "results" / "tiny" / "train"
    first = _checkpoints(train_dir)
    shutil.copy(workdir / "photos" / "gallery_00003.jpg", workdir / "photos" / "more.jpg")
    shutil.copy(workdir / "photos" / "gallery_00003.xml", workdir / "photos" / "more.xml")
    snakemake(workdir, venv_env, SUMMARY)
    log = (workdir / "results" / "logs" / "tiny" / "train.log").read_text()
    assert "the config or the training data changed" in log and "train.stale-1" in log
    assert "resuming from" not in log
    stale = workdir / "results" / "tiny" / "train.stale-1"
    assert _checkpoints(stale) == first, "the old checkpoints must be kept"
    assert "train | step:      0 | training until step 60" in log
