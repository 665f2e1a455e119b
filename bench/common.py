"""Shared helpers for the benchmarks: machine facts, medians, JSON results, tables, cached data."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# Generated data, trained models and runs reused between benchmarks; ARTDET_BENCH_CACHE starts afresh elsewhere.
CACHE = Path(os.environ.get("ARTDET_BENCH_CACHE", ROOT / "bench" / ".cache"))
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def commit() -> str:
    """The commit the measured code is at (``+dirty`` when the measured files differ from it)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "src", "rules", "Snakefile", "bench") else "")


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table (also readable in a terminal)."""

    def cell(value: object) -> str:
        return f"{value:,.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save(
    name: str,
    headline: tuple[str, float, str],
    tables: dict[str, tuple[list[str], list[list]]],
    data: dict,
    measured_at: str | None = None,
) -> None:
    """Write bench/results/NAME.json, print the tables and the headline as the last line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    label, value, unit = headline
    record = {
        "name": name,
        "commit": measured_at or commit(),
        "machine": machine(),
        "headline": {"label": label, "value": value, "unit": unit},
        "tables": {title: {"headers": h, "rows": r} for title, (h, r) in tables.items()},
        "data": data,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    for title, (headers, rows) in tables.items():
        print(f"\n{title}\n{table(headers, rows)}")
    print(f"{name}: {value:.2f} {unit}")


def generated_dataset(count: int) -> Path:
    """A cached demo dataset of ``count`` images (seed 0), made once."""
    from artdet.data.demo import generate

    folder = CACHE / f"demo-{count}"
    marker = folder / ".complete"
    if not marker.exists():
        generate(folder, count=count, seed=0)
        marker.write_text("ok\n")
    return folder


def raccoon() -> Path:
    folder = SHARED / "datasets" / "raccoon"
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: the shared raccoon dataset is needed for this benchmark")
    return folder


def run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def run_snakemake(work: Path, targets: list[str], name: str) -> float:
    """The project's Snakefile on ``targets`` in ``work`` (its config.yaml, all cores, one GPU slot);
    the log in ``work/snakemake.log``. Returns the wall seconds; stops the bench when it fails."""
    command = [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
    command += ["--configfile", str(work / "config.yaml"), "--cores", "all", "--resources", "gpu=1"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    with open(work / "snakemake.log", "w") as log:
        result = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"{name}: snakemake failed, see {work / 'snakemake.log'}")
    return time.perf_counter() - start
