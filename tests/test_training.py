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
    "split": {"test_fraction": 0.25, "val_fraction": 0.15, "seed": 0},  # 16 images: 3 val, 3 test
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
            "validate_every": 30,
            "bn_recalibration_batches": 2,
            "classifier": "off",
        }
    },
}
SUMMARY = "results/tiny/train/train_summary.json"


def _checkpoints(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in folder.glob("ckpt-*.index"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    from artdet.data.demo import generate

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
    while time.time() < deadline and max(_checkpoints(train_dir), default=0) < 20:
        assert process.poll() is None, "the workflow ended before it could be interrupted"
        time.sleep(0.5)
    assert max(_checkpoints(train_dir), default=0) >= 20, "no checkpoint at step 20 within 10 minutes"
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
    # Validations before the interruption are kept; none is repeated or lost.
    history = json.loads((train_dir / "validation.json").read_text())
    assert [h["step"] for h in history] == [30, 60]


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
    assert (stale / "best.json").exists() and (stale / "best" / "model.index").exists()
    assert "train | step:      0 | training until step 60" in log
    # The new run's validation history and best model are its own.
    history = json.loads((train_dir / "validation.json").read_text())
    assert [h["step"] for h in history] == [30, 60]
    assert json.loads((train_dir / "best.json").read_text())["step"] in (30, 60)


@pytest.mark.slow
def test_validation_during_training_scores_the_val_split_and_keeps_the_best(
    workflow_run: Path, venv_env: dict, tmp_path: Path
) -> None:
    import numpy as np
    import tensorflow as tf

    from artdet.data.split import read_sides
    from artdet.train.curves import read_scalars
    from conftest import LEARNING_CONFIG

    train_dir = workflow_run / "results" / "tiny" / "train"
    steps = LEARNING_CONFIG["models"]["tiny"]["train_steps"]
    every = LEARNING_CONFIG["models"]["tiny"]["checkpoint_every"]  # validate_every defaults to it
    history = json.loads((train_dir / "validation.json").read_text())
    assert [h["step"] for h in history] == list(range(every, steps + 1, every))
    # Validation reads the val records, never the test records (kept for `artdet evaluate`).
    pipeline = yaml.safe_load((workflow_run / "results/tiny/pipeline.yaml").read_text())
    paths = pipeline["task"]["validation_data"]["input_path"].split(",")
    assert sorted(Path(p).name for p in paths) == [f"val-0000{i}-of-00003.tfrecord" for i in range(3)]
    sides = read_sides(workflow_run / "results/data/split.csv")
    val_images = sum(side == "val" for side in sides.values())
    assert val_images >= 5
    assert pipeline["artdet"]["validation"] == {"split": "val", "images": val_images}
    assert all(h["split"] == "val" and h["images"] == val_images for h in history)
    # The last validation scored the weights export wrote, with its own input pipeline: the
    # exported SavedModel, evaluated separately on the same val records, must agree.
    subprocess.run(
        [
            "python",
            "-m",
            "artdet",
            "evaluate",
            str(workflow_run / "results/tiny/saved_model"),
            *paths,
            "--out-dir",
            str(tmp_path / "val_evaluation"),
        ],
        env=venv_env,
        check=True,
        capture_output=True,
    )
    metrics = json.loads((tmp_path / "val_evaluation" / "metrics.json").read_text())
    assert history[-1]["images"] == metrics["num_images"] and history[-1]["boxes"] == metrics["num_boxes"]
    assert abs(history[-1]["AP50"] - metrics["AP50"]) <= 0.05, (history[-1], metrics["AP50"])
    assert abs(history[-1]["AP"] - metrics["AP"]) <= 0.05
    assert set(history[-1]["per_class_AP50"]) == {"abstract", "landscape", "nocturne", "portrait"}

    best = json.loads((train_dir / "best.json").read_text())
    assert best["split"] == "val" and best["images"] == val_images
    assert best["AP50"] == max(h["AP50"] for h in history)
    assert best["step"] == min(h["step"] for h in history if h["AP50"] == best["AP50"])
    assert (train_dir / f"{best['checkpoint']}.index").exists()
    summary = json.loads((train_dir / "train_summary.json").read_text())
    assert summary["best"]["step"] == best["step"] and summary["validations"] == len(history)
    assert summary["validation"] == {"split": "val", "images": val_images, "enabled": True}

    # TensorBoard: AP50 per validation, and drawn val images with green ground-truth frames.
    scalars = read_scalars(train_dir / "validation")
    assert [s for s, _ in scalars["AP50"]] == [h["step"] for h in history]
    assert scalars["AP50"][-1][1] == pytest.approx(history[-1]["AP50"], abs=1e-4)
    images = {}
    for path in (train_dir / "validation").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith("detections_"):
                    encoded = tf.make_ndarray(value.tensor)[2]  # width, height, PNG
                    images[(value.tag, event.step)] = tf.io.decode_png(encoded).numpy()
    assert {tag for tag, _ in images} == {f"detections_{i}" for i in range(4)}
    size = LEARNING_CONFIG["models"]["tiny"]["input_size"]
    for image in images.values():
        assert image.shape[2] == 3 and max(image.shape[:2]) <= size
    final_images = [images[(f"detections_{i}", steps)] for i in range(4)]
    assert any(np.all(image == (0, 230, 0), axis=-1).sum() > 20 for image in final_images)

    # The best checkpoint exports like the final one and says which it is.
    out = tmp_path / "best_model"
    subprocess.run(
        [
            "python",
            "-m",
            "artdet",
            "export",
            "--pipeline",
            str(workflow_run / "results/tiny/pipeline.yaml"),
            "--model-dir",
            str(train_dir),
            "--label-map",
            str(workflow_run / "results/data/label_map.pbtxt"),
            "--checkpoint",
            "best",
            str(out),
        ],
        env=venv_env,
        check=True,
        capture_output=True,
    )
    info = json.loads((out / "artdet_model.json").read_text())
    assert info["checkpoint"] == f"best (step {best['step']}, AP50 {best['AP50']:.3f})"


def _params(validation_path: str):
    from types import SimpleNamespace

    return SimpleNamespace(task=SimpleNamespace(validation_data=SimpleNamespace(input_path=validation_path)))


def test_empty_val_split_turns_validation_off_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    from artdet.train.trainer import validation_split

    header = {"validation": {"split": "val", "images": 0}}
    with caplog.at_level("INFO", logger="artdet.train.trainer"):
        info = validation_split(_params(""), header, "p.yaml")
    assert info == {"split": "val", "images": 0, "enabled": False}
    assert "validation during training is off: the val split holds no image" in caplog.text
    assert "set split: val_fraction" in caplog.text and "The test split is not used instead" in caplog.text
    header = {"validation": {"split": "val", "images": 7}}
    assert validation_split(_params("/r/val-00000-of-00001.tfrecord"), header, "p.yaml") == {
        "split": "val",
        "images": 7,
        "enabled": True,
    }


def test_best_export_without_validation_says_to_set_val_fraction(tmp_path: Path) -> None:
    from artdet.deploy.export import final_checkpoint

    summary = {"best": None, "validation": {"split": "val", "images": 0, "enabled": False}}
    (tmp_path / "train_summary.json").write_text(json.dumps(summary))
    with pytest.raises(FileNotFoundError, match=r"validation during training was off because the val split holds no"):
        final_checkpoint(tmp_path, "best")
    with pytest.raises(FileNotFoundError, match=r"Set split: val_fraction in config\.yaml"):
        final_checkpoint(tmp_path, "best")
