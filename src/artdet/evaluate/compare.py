"""Compare the evaluated models: accuracy against latency and size.

The tutorial's author trained an SSD-MobileNet and a Faster R-CNN and chose
between them by AP and by how fast each ran on the target device; this puts
every trained model and export format in one table and one plot. Each export
also shows what it lost against its SavedModel on the same images (the
``d`` columns) and the share of the SavedModel's detections it finds; an
export that loses more than the tolerance is listed under the table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from artdet.classify.boxes import TWO_STAGE

COLUMNS = [
    "model",
    "format",
    "AP",
    "AP50",
    "AP75",
    "AR100",
    "class_free_AP50",
    "min_score",
    "F1",
    "latency_ms_median",
    "latency_ms_p90",
    "size_mb",
    "dAP",
    "dAP50",
    "dAR100",
    "found",
]


def _row(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    # results/<model>/evaluation/<format>/metrics.json, or results/<model>/two_stage/evaluation/<format>/metrics.json
    model, fmt = (path.parts[-4], path.parts[-2]) if len(path.parts) >= 4 else (path.parent.name, metrics["format"])
    if model == TWO_STAGE and len(path.parts) >= 5:
        model = f"{path.parts[-5]}/{TWO_STAGE}"
    versus = metrics.get("versus_reference") or {}
    difference = versus.get("difference") or {}
    return {
        "model": model,
        "format": fmt,
        "AP": metrics["AP"],
        "AP50": metrics["AP50"],
        "AP75": metrics["AP75"],
        "AR100": metrics["AR100"],
        "class_free_AP50": (metrics.get("class_free") or {}).get("AP50", ""),
        # The threshold the model is used at (fitted on val) and the F1 of its boxes there, on test.
        "min_score": (metrics.get("at_operating_point") or {}).get("min_score", ""),
        "F1": (metrics.get("at_operating_point") or {}).get("f1", ""),
        "latency_ms_median": metrics["latency_ms"]["median"],
        "latency_ms_p90": metrics["latency_ms"]["p90"],
        "size_mb": metrics["size_mb"],
        **{f"d{name}": difference.get(name, "") for name in ("AP", "AP50", "AR100")},
        "found": (versus.get("found") or {}).get("share", ""),
        "warning": versus.get("warning") or "",
    }


def warnings(rows: list[dict]) -> list[str]:
    """One line per export that lost more than its tolerance against the SavedModel."""
    return [f"WARNING: {r['model']} / {r['format']} {r['warning']}" for r in rows if r["warning"]]


def plot(rows: list[dict], out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for row in rows:
        label = f"{row['model']} / {row['format']}"
        ax1.scatter(row["latency_ms_median"], row["AP50"], s=40 + 8 * row["size_mb"], alpha=0.7, label=label)
        ax2.scatter(row["size_mb"], row["AP50"], s=60, alpha=0.7)
        ax1.annotate(
            label, (row["latency_ms_median"], row["AP50"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
        ax2.annotate(label, (row["size_mb"], row["AP50"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax1.set(
        xlabel="latency per image, median (ms, batch 1, CPU)",
        ylabel="AP50 (test split)",
        title="Accuracy against latency (marker area ~ size)",
    )
    ax2.set(xlabel="model size (MB)", ylabel="AP50 (test split)", title="Accuracy against size")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.margins(x=0.3)  # room for the labels right of the markers
        ax.set_ylim(min(0.0, *(r["AP50"] for r in rows)) if rows else 0, 1.05)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def html_table(rows: list[dict]) -> str:
    """A self-contained HTML page with the comparison table (for the Snakemake report)."""
    import html

    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        f"<tr{' class=lossy' if r['warning'] else ''}>"
        + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in COLUMNS)
        + "</tr>"
        for r in rows
    )
    notes = "".join(f"<p class=warning>{html.escape(line)}</p>" for line in warnings(rows))
    style = (
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}"
        ".lossy td{background:#fdd}.warning{color:#a00}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Model comparison</title><style>{style}</style>"
        f"</head><body><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}</body></html>\n"
    )


def compare(metrics_paths: list[str | Path], out_prefix: str | Path) -> list[dict]:
    """Write ``<out_prefix>.csv``, ``.json``, ``.md``, ``.html`` and ``.png`` from the models' metrics.json files."""
    rows = sorted((_row(Path(p)) for p in metrics_paths), key=lambda r: (r["model"], r["format"]))
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(out_prefix.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "warning"])
        writer.writeheader()
        writer.writerows(rows)
    out_prefix.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    lines += ["", *warnings(rows)] if warnings(rows) else []
    out_prefix.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out_prefix.with_suffix(".html").write_text(html_table(rows))
    plot(rows, out_prefix.with_suffix(".png"))
    return rows
