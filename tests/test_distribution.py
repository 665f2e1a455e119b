"""Training over 2 replicas: MirroredStrategy on 2 logical CPU devices, and
MultiWorkerMirroredStrategy across 2 worker processes on localhost (TF_CONFIG).

Each takes a few steps at a per-replica batch of 4 (global batch 8, learning rate doubled)
and is compared with one device at batch 8 and the same global learning rate.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HELPER = Path(__file__).with_name("distributed_helper.py")
STEPS = 6
LR = 0.004
MODEL = {
    "name": "tiny",
    "preset": "ssd_mobilenet",
    "input_size": 128,
    "train_steps": STEPS,
    "warmup_steps": 1,
    "steps_per_loop": 3,
    "checkpoint_every": STEPS,
    "bn_recalibration_batches": 0,
    # No random flips or zooms, and the records read in order, so that which replica read which
    # image can be compared with one device's global batch.
    "augment": {"hflip": False, "scale": [1.0, 1.0]},
    "overrides": {"task.train_data.shuffle_buffer_size": 1},
}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from artdet.data.demo import generate
    from artdet.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("distribution")
    generate(root / "photos", count=24, seed=4)
    prepare_dataset(root / "photos", root / "data", max_side=128, shards=2, val_fraction=0.0, test_fraction=0.1)
    train = sorted(str(p) for p in (root / "data").rglob("train-*.tfrecord"))
    assert len(train) == 2, train
    return {"root": root, "train": train}


def render(records: dict, name: str, **model) -> Path:
    from artdet.train.pipeline_config import write_pipeline

    out = records["root"] / name / "pipeline.yaml"
    write_pipeline({**MODEL, **model}, 4, records["train"], [], out, val_images=0)
    return out


def run_helper(pipeline: Path, devices: int, env: dict, tf_config: dict | None = None) -> subprocess.Popen:
    env = dict(env)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    out = pipeline.parent / f"result-{tf_config['task']['index'] if tf_config else 0}.json"
    model_dir = pipeline.parent / "train"
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(pipeline), str(model_dir), str(devices), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, pipeline: Path, index: int = 0) -> dict:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-6000:]
    return json.loads((pipeline.parent / f"result-{index}.json").read_text())


def losses(model_dir: Path) -> np.ndarray:
    from artdet.train.curves import read_scalars

    values = read_scalars(model_dir / "train")["total_loss"]
    assert [step for step, _ in values] == [3, 6]
    return np.array([value for _, value in values])


def disjoint_parts(batches: list[list[list[str]]]) -> None:
    """Every global batch is split into 2 parts of 4 images with no image in both parts."""
    assert len(batches) == 2
    for parts in batches:
        assert len(parts) == 2 and all(len(part) == 4 for part in parts), parts
        assert not set(parts[0]) & set(parts[1]), "two replicas read the same image"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_device(records: dict, venv_env: dict) -> dict:
    """Losses and the images of the first two global batches of one device at batch 8."""
    pipeline = render(records, "single", batch_size=8, learning_rate=LR, distribution="one_device")
    result = finish(run_helper(pipeline, 1, venv_env), pipeline)
    assert result["summary"]["replicas"] == 1 and result["summary"]["batch_size"] == 8
    return {"losses": losses(pipeline.parent / "train"), "batches": result["batches"]}


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices(records: dict, venv_env: dict, single_device: dict) -> None:
    pipeline = render(records, "mirrored", batch_size=4, learning_rate=LR / 2, distribution="mirrored")
    result = finish(run_helper(pipeline, 2, venv_env), pipeline)
    summary = result["summary"]
    assert summary["distribution"] == "MirroredStrategy" and summary["replicas"] == 2
    assert summary["batch_size"] == 8 and summary["checkpoint"] == f"ckpt-{STEPS}"
    assert summary["replica_weight_spread"] == 0.0
    # The first replica read the first half of one device's global batch, the second the rest.
    for parts, (whole,) in zip(result["batches"], single_device["batches"], strict=True):
        assert len(parts) == 2 and parts[0] + parts[1] == whole
    record = json.loads((pipeline.parent / "train" / "reproducibility.json").read_text())
    assert record["training"]["replicas"] == 2 and len(record["data_fingerprint"]) == 64
    assert set(record["records"]) == {Path(p).name for p in records["train"]}
    assert record["machine"]["packages"]["tensorflow"] == record["packages"]["tensorflow"]
    np.testing.assert_allclose(losses(pipeline.parent / "train"), single_device["losses"], rtol=0.05)


@pytest.mark.slow
def test_multi_worker_on_two_processes(records: dict, venv_env: dict, single_device: dict) -> None:
    pipeline = render(records, "multi_worker", batch_size=4, learning_rate=LR / 2, distribution="multi_worker")
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    env = {**venv_env, "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1")}
    processes = [
        run_helper(pipeline, 1, env, {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        for i in range(2)
    ]
    results = [finish(process, pipeline, i) for i, process in enumerate(processes)]
    for result in results:
        assert result["summary"]["distribution"] == "MultiWorkerMirroredStrategy"
        assert result["summary"]["replicas"] == 2 and result["summary"]["batch_size"] == 8
    # Each worker holds one replica and reads its own share of the record files: its part of each
    # global batch.
    disjoint_parts([[result["batches"][batch][0] for result in results] for batch in range(2)])
    # Each worker holds its own copy of the model: the same weights after the last step.
    digests = {result["summary"]["weights_sha256"] for result in results}
    assert len(digests) == 1, digests
    # Only the chief (worker 0) writes the model folder.
    chief = json.loads((pipeline.parent / "train" / "train_summary.json").read_text())
    assert chief["checkpoint"] == f"ckpt-{STEPS}" and chief["weights_sha256"] in digests
    np.testing.assert_allclose(losses(pipeline.parent / "train"), single_device["losses"], rtol=0.05)
