"""The dataset's validation report: every repair, every dropped item, the split's health.

The shards are validated, resized and split one by one; this step reads what
they wrote and answers, for the whole dataset, what a user needs before
training: did every image and box they labelled reach the TFRecords (and if
not, why), which near-duplicate images sit on two sides of the split, which
class has nothing to be tested or validated on. It writes ``validation_report.json`` and a
readable ``validation_report.md``; with ``strict`` any warning fails the run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from artdet.data.dataset import DatasetError, Sample, read_manifest
from artdet.data.split import DEFAULT_VAL_FRACTION, SIDES, informative_dhash, read_sides
from artdet.data.validate import ISSUE_KINDS, DatasetValidation, Issue
from artdet.defaults import default

log = logging.getLogger(__name__)


def near_duplicate_groups(samples: list[Sample], max_distance: int) -> list[list[int]]:
    """Indices of images whose dHashes lie within ``max_distance`` bits, grouped transitively.

    Flat images (a dHash with few or many set bits says little) are left out.
    All pairs are compared, in blocks, with vectorised popcounts: 10,000
    images take about a second.
    """
    index = [i for i, s in enumerate(samples) if informative_dhash(s.dhash)]
    if len(index) < 2:
        return []
    hashes = np.array([int(samples[i].dhash, 16) for i in index], dtype=np.uint64)
    parent = list(range(len(index)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    block = 1024
    for start in range(0, len(hashes), block):
        rows = hashes[start : start + block]
        distance = np.bitwise_count(rows[:, None] ^ hashes[None, :])
        for r, c in zip(*np.nonzero(distance <= max_distance), strict=True):
            a, b = start + int(r), int(c)
            if a < b:
                parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for k in range(len(index)):
        groups.setdefault(find(k), []).append(index[k])
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _issue_row(issue: Issue) -> dict:
    row = {"file": issue.file, "message": issue.message}
    row.update({k: v for k, v in asdict(issue).items() if k in {"object", "dropped"} and v is not None})
    if issue.boxes:
        row["boxes"] = issue.boxes
    return row


@dataclass
class _Shards:
    """The shards' validation, manifests and splits, merged."""

    classes: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)
    images_found: int = 0
    boxes_found: int = 0


def _read_shards(shard_dirs: list[str | Path]) -> _Shards:
    merged = _Shards()
    for shard in map(Path, shard_dirs):
        validation = DatasetValidation.read(shard / "validated.json")
        merged.classes = merged.classes or validation.classes
        merged.issues += validation.issues
        merged.images_found += validation.images_found
        merged.boxes_found += validation.boxes_found
        merged.samples += read_manifest(shard / "manifest.json")
        merged.sides.update(read_sides(shard / "split.csv"))
    return merged


def _straddling(samples: list[Sample], sides: dict[str, str], groups: list, issues: list[Issue]) -> list[dict]:
    """Near-duplicate groups on more than one side of the split, with the pins that would join them (noted)."""
    straddling = []
    for group in groups:
        members = [samples[i] for i in group]
        group_sides = Counter(sides[s.image] for s in members)
        if len(group_sides) > 1:
            # The side most of the group is on (ties: the first in SIDES, train before val before test).
            keep = max(SIDES, key=lambda side: group_sides[side])
            straddling.append({"images": [s.source for s in members], "pins": [f"{s.source},{keep}" for s in members]})
            issues.append(
                Issue(
                    "near_duplicate_split",
                    members[0].source,
                    "near-duplicates on different sides: "
                    f"{', '.join(f'{s.source} ({sides[s.image]})' for s in members)}; "
                    "add the suggested lines to your pins file to keep them together",
                )
            )
    return straddling


def _split_issues(
    per_class: dict[str, Counter], side_count: Counter, val_fraction: float, merged: _Shards, pins: dict | None
) -> None:
    """Note classes missing from a side, empty sides and pins that match no image."""
    issues, samples = merged.issues, merged.samples
    expected = [side for side in SIDES if side != "val" or val_fraction > 0 or side_count["val"]]
    for name, count in per_class.items():
        if count["test"] == 0:
            issues.append(Issue("class_without_test", name, f"class {name!r} has no box in the test split"))
        if "val" in expected and count["val"] == 0:
            issues.append(
                Issue(
                    "class_without_val",
                    name,
                    f"class {name!r} has no box in the val split, so validation during training cannot score it",
                )
            )
    for side in expected:
        if samples and side_count[side] == 0:
            why = "; validation during training is off (raise split: val_fraction)" if side == "val" else ""
            issues.append(Issue("empty_split", side, f"no image is in the {side} split{why}"))
    known = {s.source for s in samples} | {Path(s.source).name for s in samples}
    for name in sorted(set(pins or {}) - known):
        issues.append(Issue("pin_unmatched", name, f"pinned image {name!r} is not in the dataset"))


def _totals(merged: _Shards, per_class: dict[str, Counter], side_count: Counter) -> dict:
    """Images and boxes found, written and dropped, and per side."""
    issues, samples = merged.issues, merged.samples
    return {
        "images_found": merged.images_found,
        "images_written": len(samples),
        "images_dropped": sum(1 for i in issues if i.dropped == "image"),
        "boxes_found": merged.boxes_found,
        "boxes_written": sum(len(s.objects) for s in samples),
        "boxes_dropped": sum(1 for i in issues if i.dropped == "box")
        + sum(i.boxes for i in issues if i.dropped == "image"),
        "negatives": sum(1 for s in samples if not s.objects),
        **{f"{side}_images": side_count[side] for side in SIDES},
        **{f"{side}_boxes": sum(c[side] for c in per_class.values()) for side in SIDES},
    }


def build_report(
    shard_dirs: list[str | Path],
    near_duplicate_distance: int = default("split.near_duplicate_distance"),
    pins: dict[str, str] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> dict:
    """Merge the shards' validation, manifests and splits into one report (a JSON-ready dict).

    ``val_fraction`` is the split's: with 0 (and no image pinned to val) an
    empty val split is what the user asked for, not a warning.
    """
    merged = _read_shards(shard_dirs)
    samples, sides, issues = merged.samples, merged.sides, merged.issues
    # Dataset-wide checks of the split.
    groups = near_duplicate_groups(samples, near_duplicate_distance)
    straddling = _straddling(samples, sides, groups, issues)
    per_class = {name: Counter() for name in merged.classes}
    for s in samples:
        for obj in s.objects:
            per_class.setdefault(obj["name"], Counter())[sides[s.image]] += 1
    side_count = Counter(sides.values())
    _split_issues(per_class, side_count, val_fraction, merged, pins)
    totals = _totals(merged, per_class, side_count)
    accounted = (
        totals["images_found"] == totals["images_written"] + totals["images_dropped"]
        and totals["boxes_found"] == totals["boxes_written"] + totals["boxes_dropped"]
    )
    by_kind: dict[str, list[dict]] = {}
    for issue in issues:
        by_kind.setdefault(issue.kind, []).append(_issue_row(issue))
    return {
        "classes": merged.classes,
        "totals": totals,
        "accounted": accounted,
        "per_class": {name: {side: c[side] for side in SIDES} for name, c in per_class.items()},
        "issue_counts": {kind: len(rows) for kind, rows in sorted(by_kind.items())},
        "warnings": sum(1 for i in issues if i.severity == "warning"),
        "issues": dict(sorted(by_kind.items())),
        "near_duplicates": {
            "max_distance": near_duplicate_distance,
            "groups": [[samples[i].source for i in g] for g in groups],
            "across_split": straddling,
        },
    }


def _where(row: dict) -> str:
    return row["file"] + (f", object {row['object']}" if row.get("object") is not None else "")


def _split_sentence(totals: dict) -> str:
    """``12 train images (30 boxes), 2 val images (4 boxes), 4 test images (9 boxes); 1 negatives.``"""
    parts = [f"{totals[f'{side}_images']} {side} images ({totals[f'{side}_boxes']} boxes)" for side in SIDES]
    return f"{', '.join(parts)}; {totals['negatives']} negatives."


def format_markdown(report: dict, max_files: int = 50) -> str:
    """The report as Markdown: totals, then each kind of issue with its files."""
    t = report["totals"]
    lines = [
        "# Dataset validation report",
        "",
        f"Classes: {', '.join(report['classes']) or '(none)'}",
        "",
        "| | found | in the TFRecords | dropped |",
        "|---|---:|---:|---:|",
        f"| images | {t['images_found']} | {t['images_written']} | {t['images_dropped']} |",
        f"| boxes | {t['boxes_found']} | {t['boxes_written']} | {t['boxes_dropped']} |",
        "",
        f"Split: {_split_sentence(t)}",
        "",
    ]
    if not report["accounted"]:
        lines += ["**Some images or boxes are not accounted for; please report this as a bug.**", ""]
    lines += ["| class | " + " | ".join(f"{side} boxes" for side in SIDES) + " |", "|---|" + "---:|" * len(SIDES)]
    lines += [
        f"| {name} | " + " | ".join(str(c[side]) for side in SIDES) + " |" for name, c in report["per_class"].items()
    ]
    lines += ["", f"## Findings ({report['warnings']} warnings)", ""]
    if not report["issues"]:
        lines += ["Nothing to report: every image and box was used as labelled.", ""]
    for kind, rows in report["issues"].items():
        severity, meaning = ISSUE_KINDS[kind]
        lines += [f"### {kind} ({severity}, {len(rows)})", "", meaning, ""]
        for row in rows[:max_files]:
            lines.append(f"- {_where(row)}: {row['message']}")
        if len(rows) > max_files:
            lines.append(f"- ... and {len(rows) - max_files} more (see validation_report.json)")
        lines.append("")
    groups = report["near_duplicates"]["groups"]
    if groups:
        lines += [
            f"## Near-duplicate groups ({len(groups)}, dHash within {report['near_duplicates']['max_distance']} bits)",
            "",
        ]
        lines += [f"- {', '.join(group)}" for group in groups[:max_files]]
        lines.append("")
    straddling = report["near_duplicates"]["across_split"]
    if straddling:
        lines += ["## Pins that keep near-duplicates together", "", "```"]
        lines += [pin for group in straddling for pin in group["pins"]]
        lines += ["```", ""]
    return "\n".join(lines)


def format_html(report: dict, max_files: int = 200) -> str:
    """The report as a self-contained HTML page (for the Snakemake report, which shows HTML, not Markdown)."""
    from html import escape

    t = report["totals"]
    rows = [
        "<tr>"
        + "".join(f"<td>{v}</td>" for v in (name, t[f"{name}_found"], t[f"{name}_written"], t[f"{name}_dropped"]))
        + "</tr>"
        for name in ("images", "boxes")
    ]
    parts = [
        "<h1>Dataset validation report</h1>",
        f"<p>Classes: {escape(', '.join(report['classes']) or '(none)')}</p>",
        "<table><tr><th></th><th>found</th><th>in the TFRecords</th><th>dropped</th></tr>" + "".join(rows) + "</table>",
        f"<p>Split: {_split_sentence(t)}</p>",
        "<table><tr><th>class</th>"
        + "".join(f"<th>{side} boxes</th>" for side in SIDES)
        + "</tr>"
        + "".join(
            f"<tr><td>{escape(n)}</td>" + "".join(f"<td>{c[side]}</td>" for side in SIDES) + "</tr>"
            for n, c in report["per_class"].items()
        )
        + "</table>",
        f"<h2>Findings ({report['warnings']} warnings)</h2>",
    ]
    if not report["issues"]:
        parts.append("<p>Nothing to report: every image and box was used as labelled.</p>")
    for kind, items in report["issues"].items():
        severity, meaning = ISSUE_KINDS[kind]
        listed = "".join(f"<li>{escape(_where(r))}: {escape(r['message'])}</li>" for r in items[:max_files])
        more = f"<li>... and {len(items) - max_files} more</li>" if len(items) > max_files else ""
        parts.append(f"<h3>{kind} ({severity}, {len(items)})</h3><p>{escape(meaning)}</p><ul>{listed}{more}</ul>")
    groups = report["near_duplicates"]["groups"]
    if groups:
        parts.append(f"<h2>Near-duplicate groups ({len(groups)})</h2><ul>")
        parts += [f"<li>{escape(', '.join(g))}</li>" for g in groups[:max_files]]
        parts.append("</ul>")
    style = "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Validation report</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )


def write_report(
    report: dict, json_path: str | Path, md_path: str | Path, strict: bool = False, html_path: str | Path | None = None
) -> None:
    """Write the JSON, Markdown (and HTML) forms; with ``strict``, raise after writing if there is any warning."""
    Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    Path(md_path).write_text(format_markdown(report))
    if html_path:
        Path(html_path).write_text(format_html(report))
    t = report["totals"]
    log.info(
        "%d/%d images and %d/%d boxes reach the TFRecords; %d warnings (see %s)",
        t["images_written"],
        t["images_found"],
        t["boxes_written"],
        t["boxes_found"],
        report["warnings"],
        md_path,
    )
    if strict and report["warnings"]:
        kinds = ", ".join(f"{k}: {n}" for k, n in report["issue_counts"].items() if ISSUE_KINDS[k][0] == "warning")
        raise DatasetError(f"strict: {report['warnings']} warning(s) in the data ({kinds}); see {md_path}")
