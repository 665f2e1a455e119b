"""Run the project's Snakefile in a test folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def workflow_command(workdir: Path, *args: str) -> list[str]:
    """The project's Snakefile run in ``workdir`` with its config.yaml; cores and resources from the profile."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
        "--configfile",
        str(workdir / "config.yaml"),
    ]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """:func:`workflow_command` on this machine's two cores, one GPU slot."""
    return [*workflow_command(workdir, *args), "--cores", "2", "--resources", "gpu=1"]


def snakemake(workdir: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(snakemake_command(workdir, *args), env=env, capture_output=True, text=True, timeout=1500)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(workdir: Path, env: dict, *targets: str) -> dict[str, int]:
    """Rule name -> job count from a dry run's job stats table ({} when nothing is to be done)."""
    out = snakemake(workdir, env, "-n", *targets)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text[text.index("Job stats:") : text.index("total")]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
