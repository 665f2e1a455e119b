"""Shared fixtures: small generated datasets and paths to the project."""

from __future__ import annotations

import os
import sys
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
    from artdet.demo_data import generate

    out = tmp_path_factory.mktemp("demo") / "gallery"
    generate(out, count=40, seed=3)
    return out
