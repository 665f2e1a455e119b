"""Every exported .tflite file in the standalone LiteRT interpreter (the phone's runtime), without TensorFlow."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent


def _test_images(workflow_run: Path) -> list[Path]:
    data = workflow_run / "results" / "data"
    with open(data / "split.csv") as f:
        names = {row["filename"] for row in csv.DictReader(f) if row["split"] == "test"}
    images = sorted(p for p in data.glob("shards/*/images/*") if p.name in names)
    assert len(images) == len(names) > 0
    return images


@pytest.mark.slow
def test_litert_gives_the_detections_of_detector(workflow_run: Path, venv_env: dict) -> None:
    from artdet.deploy.runtime import Detector

    models = sorted((workflow_run / "results").glob("*/tflite_*/model.tflite"))
    assert models, "the workflow exported no TFLite file"
    images = _test_images(workflow_run)
    compared = 0
    for model in models:
        result = subprocess.run(
            [sys.executable, str(HERE / "litert_detect.py"), str(model), *map(str, images)],
            capture_output=True,
            text=True,
            env=venv_env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        answer = json.loads(result.stdout.splitlines()[-1])
        assert answer["tensorflow_imported"] is False
        detector = Detector(model)
        for path, phone in zip(images, answer["detections"], strict=True):
            # Detector drops the background id and nothing else at min_score 0: the same list.
            ours = detector(np.asarray(Image.open(path).convert("RGB")), 0.0)
            phone = [d for d in phone if d["score"] > 0]
            ours = [d for d in ours if d.score > 0]
            assert [d["class"] for d in phone] == [d.class_name for d in ours], (model, path.name)
            for theirs, mine in zip(phone, ours, strict=True):
                assert abs(theirs["score"] - mine.score) < 1e-4, (model, path.name)
                assert np.allclose(theirs["box"], mine.box, atol=0.5), (model, path.name)
            compared += len(ours)
    assert compared > 0, "no detections to compare"
