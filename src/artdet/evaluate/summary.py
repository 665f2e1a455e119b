"""Print where a finished workflow put its model, metrics and plots (``make demo`` ends with this)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def _form_lines(folder: Path, name: str) -> list[str]:
    """Where one model form (``<model>`` or ``<model>/two_stage``) put its model, training and scores."""
    lines = [f"Model {name}:"]
    lines.append(f"  exported SavedModel : {folder / 'saved_model'}/")
    lines.append(f"  checkpoints, events : {folder / 'train'}/  (tensorboard --logdir {folder / 'train'})")
    train_summary = folder / "train" / "train_summary.json"
    if train_summary.exists():
        t = json.loads(train_summary.read_text())
        best = t.get("best")
        steps = f"{t['train_steps']} steps"
        if t.get("stopped_early"):
            steps = f"{t['stopped_at_step']} of {t['train_steps']} steps (stopped early)"
        lines.append(
            f"  training            : {steps} in {t['seconds'] / 60:.1f} min on {t['device']}"
            + (f"; best validation AP50 {best['AP50']:.3f} at step {best['step']}" if best else "")
        )
        if t.get("length"):
            lines.append(f"  length              : {t['length']}")
    for metrics_path in sorted((folder / "evaluation").glob("*/metrics.json")):
        m = json.loads(metrics_path.read_text())
        versus = m.get("versus_reference")
        extra = f", finds {versus['found']['share']} of the SavedModel's detections" if versus else ""
        lines.append(
            f"  {metrics_path.parent.name:<20}: AP {m['AP']:.3f}, AP50 {m['AP50']:.3f}, "
            f"{m['latency_ms']['median']:.0f} ms, {m['size_mb']:.1f} MB{extra}  ({metrics_path.parent}/)"
        )
        if versus and versus["warning"]:
            lines.append(f"  WARNING: {metrics_path.parent.name} {versus['warning']}")
    lines.append(f"  training curves     : {folder / 'training_loss.png'}")
    return lines


def summarize(config_path: str | Path, results: str | Path = "results") -> str:
    config = yaml.safe_load(Path(config_path).read_text())
    results = Path(results)
    lines = [f"Dataset: {config['dataset']}  ->  TFRecords, CSVs, label map in {results / 'data'}/"]
    report = results / "data" / "validation_report.json"
    if report.exists():
        t = json.loads(report.read_text())["totals"]
        lines.append(
            f"  validation report  : {report.with_suffix('.md')}  ({t['images_written']}/{t['images_found']} images, "
            f"{t['boxes_written']}/{t['boxes_found']} boxes reach the TFRecords)"
        )
    for name in config["train_models"]:
        choice_path = results / name / "form.json"
        if choice_path.exists():
            choice = json.loads(choice_path.read_text())
            lines.append(f"Model {name}: kept {choice['kept']} ({choice['reason']}); deploy {choice['saved_model']}/")
        for folder in (results / name, results / name / "two_stage"):
            if folder.exists():
                lines += _form_lines(folder, folder.relative_to(results).as_posix())
    if (results / "comparison.md").exists():
        lines.append(f"Comparison: {results / 'comparison.md'}, {results / 'comparison.png'}")
    if (results / "report.html").exists():
        lines.append(f"Report: {results / 'report.html'}")
    lines.append(f"Logs: {results / 'logs'}/")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1] if len(sys.argv) > 1 else "config.yaml"))
