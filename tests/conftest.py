"""Shared fixtures: small generated datasets and paths to the project."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def venv_env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 generated demo pictures with LabelImg XML (read-only for tests)."""
    from artdet.data.demo import generate

    out = tmp_path_factory.mktemp("demo") / "gallery"
    generate(out, count=40, seed=3)
    return out


# The configuration of a short real training run whose model finds the demo paintings:
# 192x192 input, 48 images, a few hundred steps on a CPU.
LEARNING_CONFIG = {
    "dataset": "photos",
    "classes": [],
    "resize": {"max_side": 192, "max_bytes": 200000},
    # 48 images: 12 test, 9 val (every class has val boxes, so validation scores each), 27 train.
    "split": {"test_fraction": 0.2, "val_fraction": 0.2, "seed": 0},
    "records": {"shards": 3},
    "export": {"tflite": ["int8"]},
    "train_models": ["tiny"],
    "models": {
        "tiny": {
            "preset": "ssd_mobilenet",
            "input_size": 192,
            "batch_size": 8,
            "train_steps": 300,
            "learning_rate": 0.004,
            "warmup_steps": 30,
            "steps_per_loop": 50,
            "checkpoint_every": 100,
            # The detector alone: tests/test_two_stage.py turns the two-stage form on in a copy of the run.
            "classifier": "off",
        }
    },
}


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory: pytest.TempPathFactory, venv_env: dict) -> Path:
    """A finished run of the real workflow on generated data (shared by the end-to-end tests)."""
    import yaml

    from artdet.data.demo import generate
    from workflow_helpers import snakemake

    workdir = tmp_path_factory.mktemp("workflow")
    generate(workdir / "photos", count=48, seed=5)
    (workdir / "config.yaml").write_text(yaml.safe_dump(LEARNING_CONFIG))
    result = snakemake(workdir, venv_env)
    (workdir / "snakemake_console.txt").write_text(result.stdout + result.stderr)
    return workdir


@pytest.fixture(scope="session")
def trained_model(workflow_run: Path) -> Path:
    """The exported SavedModel of :func:`workflow_run`."""
    return workflow_run / "results" / "tiny" / "saved_model"


# The classifier's collection in :func:`classify_run`: the first works of artdet.classify.demo.WORKS.
CLASSIFY_WORKS = 5


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory: pytest.TempPathFactory, venv_env: dict) -> Path:
    """`snakemake classify` on 5 works x 8 photos, with a corrupt JPEG and a stray file, and no detector dataset.

    Photos of 4 other paintings are in ``works-unseen/``; the classifier is ``results/classify/model.joblib``.
    """
    import yaml

    from artdet.classify.demo import generate
    from workflow_helpers import snakemake

    work = tmp_path_factory.mktemp("classify")
    data = work / "works"
    generate(data, photos=8, works=CLASSIFY_WORKS, unseen=4)
    (data / "bathers" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shutil.copy(next((data / "bathers").glob("*.jpg")), data / "loose.jpg")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["dataset"] = str(work / "no-such-detector-dataset")
    config["classify"] = {"vocabulary_size": 64, "test_fraction": 0.3, "unseen": str(work / "works-unseen")}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(work, venv_env, "classify", "--config", f"classify_dataset={data}")
    return work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path | None, args: list[str], env: dict, log_path: Path) -> tuple[str, subprocess.Popen]:
    """`artdet serve` on a free loopback port, serving ``model`` as 'paintings', once /health answers.

    With ``model`` None, no detector: ``args`` names what to serve (``--classifier PATH``).
    """
    import httpx

    port = _free_port()
    served = [f"paintings={model}"] if model else []
    log = open(log_path, "w+")  # noqa: SIM115 (the process writes to it until the fixture ends)
    process = subprocess.Popen(
        [sys.executable, "-m", "artdet", "serve", *served, "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return url, process
        except httpx.TransportError:
            if process.poll() is not None:
                raise AssertionError(log_path.read_text()) from None
            time.sleep(0.5)
    process.kill()
    raise AssertionError("server did not start in 120 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def server(trained_model: Path, venv_env: dict, tmp_path_factory: pytest.TempPathFactory):
    """`artdet serve` on a free loopback port, serving the trained model as 'paintings' (default limits, no key)."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    url, process = start_server(trained_model, ["--max-upload-mb", "8", "--max-megapixels", "40"], venv_env, log)
    yield url
    stop_server(process)


API_KEY = "test-key-0123"


@pytest.fixture(scope="session")
def guarded_server(trained_model: Path, venv_env: dict, tmp_path_factory: pytest.TempPathFactory):
    """A server as on a network: API key from ARTDET_API_KEY, one CORS origin, one request at work, one waiting.

    Yields (url, path of its log).
    """
    log = tmp_path_factory.mktemp("guarded") / "serve.log"
    args = ["--max-concurrency", "1", "--max-queue", "1", "--cors-origin", "http://gallery.example"]
    url, process = start_server(trained_model, args, {**venv_env, "ARTDET_API_KEY": API_KEY}, log)
    yield url, log
    stop_server(process)
