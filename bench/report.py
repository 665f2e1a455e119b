"""Regenerate BENCHMARKS.md from the JSON files in bench/results/."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import tokenize

import yaml

from common import RESULTS, ROOT, table

ORDER = [
    "accuracy",
    "anchors",
    "int8_scores",
    "peers",
    "data_prep",
    "dag",
    "train_speed",
    "inference",
    "serve",
    "classify",
]
# What each benchmark measures: a change to these paths after the commit a section was measured at
# marks it STALE (its script and bench/common.py count for every one).
MEASURES = {
    "accuracy": [
        "src/artdet/data",
        "src/artdet/train",
        "src/artdet/deploy",
        "src/artdet/evaluate",
        "src/artdet/classify",
        "rules",
        "Snakefile",
        "config.yaml",
    ],
    "int8_scores": ["src/artdet/deploy", "src/artdet/train", "src/artdet/evaluate"],
    "anchors": ["src/artdet/data", "src/artdet/train", "src/artdet/evaluate", "rules", "Snakefile", "config.yaml"],
    "peers": ["src/artdet/train", "src/artdet/evaluate", "src/artdet/deploy", "config.yaml"],
    "data_prep": ["src/artdet/data"],
    "dag": ["Snakefile", "rules", "src/artdet/data/dataset.py"],
    "train_speed": ["src/artdet/train"],
    "inference": ["src/artdet/deploy", "src/artdet/classify"],
    "serve": ["src/artdet/deploy"],
    "classify": ["src/artdet/classify"],
    "review": [
        "src/artdet/data",
        "src/artdet/train",
        "src/artdet/deploy/export.py",
        "src/artdet/deploy/runtime.py",
        "src/artdet/evaluate/label_review.py",
        "src/artdet/evaluate/review_outputs.py",
        "rules",
        "Snakefile",
        "config.yaml",
    ],
}


# Sections no benchmark writes any more, dropped when BENCHMARKS.md is regenerated: ``accuracy``
# (all sets in one) is now one section per set, ``accuracy_<set>``; ``review_tune`` (the injection
# seed the label review's ranking was designed on) is shown only when measured again, since figures
# on the data that chose a design are not results.
RETIRED = {"accuracy", "review_tune"}


def measured_paths(name: str) -> list[str]:
    """The files a section's figures depend on (``accuracy_chess`` is measured like ``accuracy``)."""
    base = next((key for key in MEASURES if name == key or name.startswith(f"{key}_")), None)
    script = f"bench/{base or name}.py"
    return [*MEASURES.get(base or "", ["src"]), script, "bench/common.py"]


def meaning(path: str, text: str | None) -> object:
    """What a file does, without what only explains it: a figure quoted in a comment or docstring can be
    brought up to date without marking every section that measured the file STALE.

    Python is compared as its syntax tree without docstrings (comments are not in it), YAML as the data
    it loads, and Snakefile and rules as their Python tokens without comments (Snakemake's syntax is not
    Python's grammar but is made of its tokens, so a ``#`` inside a shell string stays code); any other
    file as its lines without blank and whole-line comments. A docstring a program reads at run time
    (``__doc__`` as argparse's help) counts as a comment: it changes the help, not a figure.
    """
    if text is None:
        return None
    if path.endswith(".py"):
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return text
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        return ast.dump(tree)
    if path.endswith((".yaml", ".yml")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    if path.endswith(".smk") or path.rsplit("/", 1)[-1] == "Snakefile":
        try:
            return [
                (token.type, token.string)
                for token in tokenize.generate_tokens(io.StringIO(text).readline)
                if token.type not in (tokenize.COMMENT, tokenize.NL)
            ]
        except (tokenize.TokenError, SyntaxError):
            pass
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def stale_since(name: str, commit: str | None) -> list[str]:
    """The measured files whose code changed since ``commit`` (committed or not); every path when no
    commit was recorded. A change to comments or docstrings alone leaves a section fresh (``meaning``)."""
    paths = measured_paths(name)
    if not commit or commit == "unknown":
        return paths
    base = commit.removesuffix("+dirty")
    changed = subprocess.run(
        ["git", "diff", "--name-only", base, "--", *paths], cwd=ROOT, capture_output=True, text=True
    )
    if changed.returncode != 0:
        return paths

    def then(path: str) -> str | None:
        shown = subprocess.run(["git", "show", f"{base}:{path}"], cwd=ROOT, capture_output=True, text=True)
        return shown.stdout if shown.returncode == 0 else None

    def now(path: str) -> str | None:
        return (ROOT / path).read_text() if (ROOT / path).is_file() else None

    return [path for path in changed.stdout.split() if meaning(path, then(path)) != meaning(path, now(path))]


def provenance(name: str, commit: str | None, where: str) -> str:
    """The line under a section's title: the commit and machine, and STALE when the code moved on."""
    rerun = f"rerun `python {measured_paths(name)[-2]}`"  # the section's own script
    if not commit or commit == "unknown":
        return f"Measured at no commit recorded, {where}. **STALE**: the code it measured is not known; {rerun}."
    changed = stale_since(name, commit)
    line = f"Measured at commit {commit[:7]}{'+dirty' if commit.endswith('+dirty') else ''}, {where}."
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        line += f" **STALE**: changed since then: {shown}; {rerun}."
    return line


def previous_sections() -> dict[str, list[str]]:
    """The sections of the current BENCHMARKS.md by benchmark name: kept for benchmarks not rerun here.

    bench/results/ is not committed, so a machine that reran one benchmark
    has only that one's JSON; the others keep their last measured text.
    """
    path = ROOT / "BENCHMARKS.md"
    sections: dict[str, list[str]] = {}
    name = None
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("## "):
            name = line[3:].strip()
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    sections.pop("Reproduce", None)
    return {name: lines for name, lines in sections.items() if name not in RETIRED}


def main() -> None:
    records = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    if not records:
        raise SystemExit("no results in bench/results/: run `make bench` first")
    machine = next(iter(records.values()))["machine"]
    previous = previous_sections()
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/report.py`) from `bench/results/*.json`; do not edit by hand.",
        "Each script also runs alone: `python bench/NAME.py`; a section not rerun keeps its last figures.",
        "Each table says whether its figures are medians or single runs; ratios compare with a baseline",
        "measured in the same run. These machines are shared and noisy.",
        "",
        f"Last machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, {machine['platform']}; each section names its own.",
        "",
    ]
    present = set(records) | set(previous)
    # Each benchmark, then its partial runs (accuracy_chess after accuracy), then any other.
    order = [m for n in ORDER for m in [n, *sorted(x for x in present if x.startswith(f"{n}_"))] if m in present]
    for name in order + sorted(present - set(order)):
        if name not in records:
            kept = [line for line in previous[name] if not line.startswith("Measured at ")]
            while kept and not kept[0].strip():
                kept.pop(0)  # the blank lines around the old provenance line: one is put back below
            while kept and not kept[-1].strip():
                kept.pop()
            recorded = next((line for line in previous[name] if line.startswith("Measured at commit ")), "")
            commit = recorded.split()[3].rstrip(",") if recorded else None
            where = recorded.split(", ", 1)[1].split(".")[0] if recorded else "an earlier run"
            lines += [f"## {name}", "", provenance(name, commit, where), "", *kept, ""]
            continue
        record = records[name]
        headline = record["headline"]
        where = (
            f"{record['machine']['date']} on {record['machine']['cpu']}, {record['machine']['cores']} cores, "
            f"{record['machine']['memory_gib']} GiB"
        )
        lines += [
            f"## {name}",
            "",
            provenance(name, record.get("commit"), where),
            "",
            f"**{headline['label']}: {headline['value']:.2f}{' ' + headline['unit'] if headline['unit'] else ''}**",
            "",
        ]
        for title, content in record["tables"].items():
            lines += [f"{title}:", "", table(content["headers"], content["rows"]), ""]
    lines += [
        "## Reproduce",
        "",
        "```bash",
        "make bench            # every benchmark, then this file",
        "make bench-peers      # YOLOv8n (Ultralytics, own virtualenv) beside our recipe, same budget",
        "python bench/dag.py   # one of them",
        "```",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
