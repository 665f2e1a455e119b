"""Pretrained checkpoints: fetched once, verified by sha256, restored into the model we fine-tune."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from artdet.train import checkpoints
from artdet.train.checkpoints import CheckpointError, fetch


def _archive(tmp_path: Path) -> Path:
    """A real TF checkpoint in a .tar.gz, the way Model Garden publishes them."""
    import tensorflow as tf

    source = tmp_path / "made" / "ckpt"
    source.parent.mkdir()
    tf.train.Checkpoint(v=tf.Variable([1.0, 2.0, 3.0])).write(str(source))
    archive = tmp_path / "weights.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in source.parent.iterdir():
            tar.add(path, arcname=f"weights/{path.name}")
    return archive


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    entry = {"url": _archive(tmp_path).as_uri(), "modules": ["backbone"], "description": "test"}
    monkeypatch.setitem(checkpoints.REGISTRY, "test_ckpt", entry)
    return entry


def test_fetch_downloads_once_and_locks_the_sha256(tmp_path: Path, registry: dict) -> None:
    cache, lock = tmp_path / "cache", tmp_path / "checkpoints.lock.json"
    info = fetch("test_ckpt", cache, lock)
    assert Path(info["prefix"]).name == "ckpt" and info["modules"] == ["backbone"]
    assert json.loads(lock.read_text())["test_ckpt"]["sha256"] == info["sha256"]
    (tmp_path / "weights.tar.gz").unlink()  # the second run needs no download
    assert fetch("test_ckpt", cache, lock) == info
    # Changed weights in the cache are caught.
    data = next(Path(info["prefix"]).parent.glob("ckpt.data-*"))
    data.write_bytes(data.read_bytes() + b"x")
    with pytest.raises(CheckpointError, match=r"differs from .* recorded in .*checkpoints\.lock\.json"):
        fetch("test_ckpt", cache, lock)
    data.unlink()
    with pytest.raises(CheckpointError, match=r"its \.data-\* files are missing; the download is incomplete"):
        fetch("test_ckpt", cache, lock)


def test_offline_fetch_fails_at_once_saying_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"url": "http://127.0.0.1:9/retinanet.tar.gz", "modules": ["backbone"], "description": "test"}
    monkeypatch.setitem(checkpoints.REGISTRY, "offline_ckpt", entry)
    with pytest.raises(CheckpointError) as error:
        fetch("offline_ckpt", tmp_path / "cache", tmp_path / "lock.json")
    message = str(error.value)
    assert "cannot download http://127.0.0.1:9/retinanet.tar.gz" in message
    assert f"place the archive at {tmp_path / 'cache' / 'offline_ckpt' / 'retinanet.tar.gz'}" in message
    with pytest.raises(CheckpointError, match="unknown pretrained checkpoint 'nope'"):
        fetch("nope", tmp_path / "cache", tmp_path / "lock.json")


@pytest.mark.slow
def test_fine_tuning_restores_the_checkpoint_weights(tmp_path: Path, demo_dir: Path) -> None:
    """Make a backbone+decoder checkpoint, fine-tune from it, and find its tensors in the trained model."""
    import tensorflow as tf
    from official.core import task_factory

    from artdet.data.prepare import prepare_dataset
    from artdet.train.pipeline_config import load_params, write_pipeline
    from artdet.train.trainer import train

    prepare_dataset(demo_dir, tmp_path / "data", max_side=128)
    model = {
        "name": "ft",
        "preset": "ssd_mobilenet",
        "input_size": 128,
        "batch_size": 2,
        "train_steps": 2,
        "steps_per_loop": 1,
        "checkpoint_every": 1,
        "learning_rate": 1e-9,
        "warmup_steps": 0,
        "bn_recalibration_batches": 0,
    }
    records = [str(tmp_path / "data" / "train.record")], [str(tmp_path / "data" / "val.record")]
    write_pipeline(model, 4, *records, tmp_path / "base.yaml")
    params, _ = load_params(tmp_path / "base.yaml")
    source = task_factory.get_task(params.task).build_model()
    for variable in source.backbone.trainable_variables + source.decoder.trainable_variables:
        variable.assign(tf.random.normal(variable.shape, stddev=0.05, seed=1))
    prefix = tf.train.Checkpoint(backbone=source.backbone, decoder=source.decoder).write(
        str(tmp_path / "made" / "ckpt")
    )
    # Keras numbers layer names per model built, so variables are compared in order, not by name.
    expected = [v.numpy() for v in source.backbone.trainable_variables + source.decoder.trainable_variables]

    init = {"name": "made", "prefix": prefix, "modules": ["backbone", "decoder"], "sha256": "-"}
    write_pipeline(model, 4, *records, tmp_path / "ft.yaml", init)
    train(tmp_path / "ft.yaml", tmp_path / "run")
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "run")))
    params, _ = load_params(tmp_path / "ft.yaml")
    trained = task_factory.get_task(params.task).build_model()
    tf.train.Checkpoint(model=trained).read(tf.train.latest_checkpoint(str(tmp_path / "run"))).expect_partial()
    restored = [v.numpy() for v in trained.backbone.trainable_variables + trained.decoder.trainable_variables]
    assert reader.get_variable_to_shape_map()  # a real training checkpoint was written
    assert len(restored) == len(expected) > 50
    for index, (got, want) in enumerate(zip(restored, expected, strict=True)):
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"variable {index}")
