"""`artdet doctor`: what this machine offers for training, as text and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys


def doctor(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "artdet", "doctor", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_doctor_reports_the_machine(venv_env: dict) -> None:
    info = json.loads(doctor(venv_env, "--json"))
    assert info["packages"]["tensorflow"].startswith("2.")
    assert info["cpu"]["cores"] >= 1 and info["disk_free_gib"] > 0
    assert info["memory_gib"]["total"] >= info["memory_gib"]["available"] > 0
    text = doctor(venv_env)
    if not info["gpus"]:
        # On a machine without a GPU it says so, trains in float32 and only the CPU presets fit.
        assert "no GPU" in text.splitlines()[0]
        assert info["mixed_precision"] == "float32"
        fits = {name for name, fit in info["presets"].items() if fit["fits"]}
        assert fits == {"ssd_mobilenet", "faster_rcnn"}
    else:
        assert all(gpu["compute_capability"] for gpu in info["gpus"])
        assert info["cuda_build"]
    for name in info["presets"]:
        assert name in text
