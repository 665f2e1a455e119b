"""Plot training curves from the TensorBoard event files: Model Garden's losses, our validation AP."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def read_scalars(event_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in the event files under ``event_dir``: tag -> [(step, value)]."""
    import tensorflow as tf

    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(Path(event_dir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor") and not value.tensor.string_val:
                    array = tf.make_ndarray(value.tensor)
                    if array.size != 1:
                        continue
                    number = float(array.reshape(()))
                else:
                    continue
                series[value.tag][int(event.step)] = float(number)
    return {tag: sorted(points.items()) for tag, points in series.items()}


# Validation scalars (artdet.train.periodic_eval) plotted in their own panel.
VALIDATION_TAGS = ("AP50", "AP")


def plot_training(event_dir: str | Path, out: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Losses, learning rate and (when validated) AP50/AP on the val split; returns the series used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_scalars(event_dir)
    validated = [tag for tag in VALIDATION_TAGS if series.get(tag)]
    fig, axes = plt.subplots(1, 3 if validated else 2, figsize=(15 if validated else 10, 4), dpi=110)
    loss_ax, lr_ax = axes[0], axes[1]
    if validated:
        ap_ax = axes[2]
        for tag in validated:
            steps, values = zip(*series[tag], strict=True)
            ap_ax.plot(steps, values, marker="o", label=tag)
        best_step, best = max(series["AP50"], key=lambda p: (p[1], -p[0])) if series.get("AP50") else (0, 0)
        ap_ax.axvline(best_step, color="grey", linestyle=":", label=f"best AP50 {best:.3f} (step {best_step})")
        ap_ax.set(xlabel="step", ylabel="COCO AP", title="Validation on the val split", ylim=(0, 1))
    for tag, points in sorted(series.items()):
        if tag in VALIDATION_TAGS:
            continue
        steps, values = zip(*points, strict=True) if points else ((), ())
        if "loss" in tag:
            loss_ax.plot(steps, values, label=tag, marker="." if len(points) < 20 else None)
        elif "learning_rate" in tag:
            lr_ax.plot(steps, values, label=tag)
    loss_ax.set(xlabel="step", ylabel="loss", title="Training losses", yscale="log")
    lr_ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return series
