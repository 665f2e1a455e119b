"""A small int8 TFLite detector for the light-install check (`make test-lite`), made with the full install.

Runs the real workflow on 24 generated photos (a few training steps at 128 pixels): the check
is that the light install runs the file, not that the model is good.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from artdet.data.demo import generate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "dataset": "photos",
    "classes": [],
    "resize": {"max_side": 128, "max_bytes": 200000},
    "split": {"test_fraction": 0.2, "val_fraction": 0.0, "seed": 0},
    "records": {"shards": 1},
    "export": {"tflite": ["int8"]},
    "train_models": ["tiny"],
    "models": {
        "tiny": {
            "preset": "ssd_mobilenet",
            "input_size": 128,
            "batch_size": 4,
            "train_steps": 20,
            "warmup_steps": 5,
            "steps_per_loop": 10,
            "checkpoint_every": 20,
            "bn_recalibration_batches": 2,
            "classifier": "off",
        }
    },
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "photos").exists():
        generate(out / "photos", count=24, seed=4)
    (out / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    target = "results/tiny/tflite_int8/model.tflite"
    command = [sys.executable, "-m", "snakemake", target, "-s", str(ROOT / "Snakefile"), "--directory", str(out)]
    command += ["--configfile", str(out / "config.yaml"), "--cores", "2", "--resources", "gpu=1"]
    subprocess.run(command, check=True)
    print(out / target)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
