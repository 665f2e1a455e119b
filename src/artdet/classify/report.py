"""The classifier dataset's report: pictures per class and side, and every file left out with why.

Nothing the user put in the folder disappears silently: a picture is either counted
here on its side, or listed under ``dropped`` with the reason and what to do.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def write_report(reports: list[Path], out: Path) -> dict:
    """Merge the shards' reports into ``out`` (.json) and a Markdown table beside it (.md)."""
    items, dropped, no_keypoints, layouts = [], [], [], set()
    for path in reports:
        shard = json.loads(path.read_text())
        items += shard["items"]
        dropped += shard["dropped"]
        no_keypoints += shard["no_keypoints"]
        layouts.add(shard["layout"])
    counts = Counter((i["label"], i["side"]) for i in items)
    classes = sorted({i["label"] for i in items})
    body = {
        "layout": sorted(layouts),
        "pictures": len(items),
        "classes": {c: {"train": counts[(c, "train")], "test": counts[(c, "test")]} for c in classes},
        "dropped": sorted(dropped, key=lambda d: d["file"]),
        "no_keypoints": sorted(no_keypoints),
    }
    out.write_text(json.dumps(body, indent=1) + "\n")
    lines = ["# Classifier data", "", f"{len(items)} pictures ({', '.join(sorted(layouts))}).", ""]
    lines += ["| class | train | test |", "| --- | --- | --- |"]
    lines += [f"| {c} | {v['train']} | {v['test']} |" for c, v in body["classes"].items()]
    warnings = [c for c, v in body["classes"].items() if not v["test"] or not v["train"]]
    if warnings:
        lines += ["", f"Warning: no picture on one side for {', '.join(warnings)}; add pictures of these classes."]
    lines += ["", f"## Dropped ({len(dropped)})", ""]
    lines += [f"- `{d['file']}`: {d['reason']}" for d in body["dropped"]] or ["None."]
    if no_keypoints:
        lines += ["", f"{len(no_keypoints)} pictures have no SIFT keypoint (kept; only their colour counts)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return body
