"""Print where a finished workflow put its model, metrics and plots (``make demo`` ends with this)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def summarize(config_path: str | Path, results: str | Path = "results") -> str:
    config = yaml.safe_load(Path(config_path).read_text())
    results = Path(results)
    lines = [f"Dataset: {config['dataset']}  ->  TFRecords, CSVs, label map in {results / 'data'}/"]
    for name in config["train_models"]:
        folder = results / name
        lines.append(f"Model {name}:")
        lines.append(f"  exported SavedModel : {folder / 'saved_model'}/")
        lines.append(f"  checkpoints, events : {folder / 'train'}/  (tensorboard --logdir {folder / 'train'})")
        metrics_path = folder / "metrics.json"
        if metrics_path.exists():
            m = json.loads(metrics_path.read_text())
            lines.append(f"  metrics             : {metrics_path}  (AP {m['AP']:.3f}, AP50 {m['AP50']:.3f})")
        else:
            lines.append(f"  metrics             : {metrics_path}  (not built yet)")
        lines.append(f"  plots               : {folder / 'precision_recall.png'}, {folder / 'training_loss.png'}")
    lines.append(f"Logs: {results / 'logs'}/")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1] if len(sys.argv) > 1 else "config.yaml"))
