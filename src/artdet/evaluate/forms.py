"""Which form of a model is kept: the detector alone, or the two-stage model (detector + box classifier).

With ``classifier: auto`` both forms are trained, and each exported SavedModel is scored on
the **val** split by the same evaluation as the test split's; the form with the higher AP50
there is kept, and a tie keeps the detector alone (one model, one stage, less to run). The
test split plays no part: its scores of both forms are reported afterwards, as for any
model. ``results/<model>/form.json`` records the choice, both val scores and the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMS = ("detector", "two_stage")


def _scores(metrics: dict) -> dict:
    return {
        "AP50": metrics["AP50"],
        "AP": metrics["AP"],
        "class_free_AP50": (metrics.get("class_free") or {}).get("AP50"),
        "images": metrics["latency_ms"]["images"],
    }


def choose_form(
    model: str,
    mode: str,
    detector_val: str | Path | None = None,
    two_stage_val: str | Path | None = None,
    classes: int | None = None,
) -> dict:
    """The kept form of ``model`` under ``classifier: mode`` (auto, on or off), from the val metrics.json files.

    ``on`` and ``off`` keep their one form; ``auto`` with one class (``classes``), or without both
    val scores (no val split), keeps the detector and says why.
    """
    val = {}
    for form, path in zip(FORMS, (detector_val, two_stage_val), strict=True):
        if path is not None:
            val[form] = _scores(json.loads(Path(path).read_text()))
    if mode == "on":
        kept, reason = "two_stage", "classifier: on"
    elif mode == "off":
        kept, reason = "detector", "classifier: off"
    elif classes is not None and classes < 2:
        kept, reason = "detector", "classifier: auto with one class: the detector names every box itself"
    elif len(val) < 2:
        kept, reason = "detector", "classifier: auto without a val split to compare the forms on: the detector alone"
    else:
        a, b = val["detector"]["AP50"], val["two_stage"]["AP50"]
        kept = "two_stage" if b > a else "detector"
        relation = ">" if b > a else ("=" if b == a else "<")
        reason = f"classifier: auto: val AP50 two-stage {b:.3f} {relation} detector {a:.3f}"
    folder = f"results/{model}" + ("/two_stage" if kept == "two_stage" else "")
    return {
        "model": model,
        "classifier": mode,
        "kept": kept,
        "reason": reason,
        "val": val,
        "saved_model": f"{folder}/saved_model",
        "folder": folder,
    }


def form_html(choice: dict) -> str:
    """The choice as a small page for the Snakemake report."""
    import html

    rows = "".join(
        f"<tr><td>{html.escape(form)}{' (kept)' if form == choice['kept'] else ''}</td>"
        + "".join(f"<td>{html.escape(str(scores.get(k)))}</td>" for k in ("AP50", "AP", "class_free_AP50", "images"))
        + "</tr>"
        for form, scores in choice["val"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Kept form</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #bbb;padding:4px 8px}</style></head><body>"
        f"<p>{html.escape(choice['model'])}: kept <b>{html.escape(choice['kept'])}</b> "
        f"({html.escape(choice['reason'])}); deploy {html.escape(choice['saved_model'])}</p>"
        "<table><tr><th>form (val split)</th><th>AP50</th><th>AP</th><th>class-free AP50</th><th>images</th></tr>"
        f"{rows}</table></body></html>\n"
    )
