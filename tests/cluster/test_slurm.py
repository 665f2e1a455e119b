"""The workflow on a real single-node SLURM cluster, through `snakemake --profile profiles/slurm`.

Run by `make test-cluster` (which starts the cluster with tests/cluster/cluster.sh and stops
it afterwards), not by `make test`. The data stages and a few training steps run once locally
and once as SLURM jobs; every job must have gone through sbatch, and the split, the CSVs and
the TFRecords must be byte-identical.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import LEARNING_CONFIG, ROOT
from workflow_helpers import workflow_command

STEPS = 10


def cluster_ready() -> str | None:
    """None when SLURM answers and its node takes jobs; otherwise why not."""
    try:
        state = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    if not any(s.rstrip("*~#") in {"idle", "mix", "alloc"} for s in state):
        return f"no SLURM node takes jobs (sinfo states: {state or 'none'}); run `make cluster-up`"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = cluster_ready()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the SLURM cluster is not up under CI: {problem}")
        pytest.skip(problem)


def make_workdir(path: Path) -> Path:
    from artdet.data.demo import generate

    config = copy.deepcopy(LEARNING_CONFIG)
    config["models"]["tiny"].update(train_steps=STEPS, warmup_steps=2, steps_per_loop=5, checkpoint_every=STEPS)
    config["models"]["tiny"]["validations"] = 1
    path.mkdir(parents=True)
    generate(path / "photos", count=48, seed=5)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    return path


TARGETS = ["data", "results/tiny/train/train_summary.json"]


def run_snakemake(workdir: Path, env: dict, *args: str) -> str:
    command = workflow_command(workdir, *args, *TARGETS)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    (workdir / "snakemake_console.txt").write_text(output)
    assert result.returncode == 0, f"snakemake failed in {workdir}:\n{output[-6000:]}"
    return output


def compared_files(results: Path) -> list[Path]:
    """The split, CSVs and TFRecords, relative to results/."""
    data = results / "data"
    files = [data / "split.csv", *data.glob("*_labels.csv"), *data.glob("shards/*/*.csv")]
    files += data.glob("records/*.tfrecord")
    return sorted(p.relative_to(results) for p in files)


@pytest.mark.slow
def test_slurm_run_matches_local_run(cluster: None, tmp_path: Path, venv_env: dict) -> None:
    local = make_workdir(tmp_path / "local")
    slurm = make_workdir(tmp_path / "slurm")
    run_snakemake(local, venv_env, "--cores", "2")
    output = run_snakemake(
        slurm,
        venv_env,
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        "--slurm-logdir",
        str(tmp_path / "slurm-logs"),
    )

    # Every job of the run went through sbatch: SLURM knows one job per Snakemake job (the
    # `data` target has no command and is not a job anywhere), each named after the run and
    # commented with its rule, and each completed.
    planned = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", output[output.index("Job stats:") :], re.M))
    planned.pop("data", None)
    planned.pop("total")
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    listed = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%i|%k|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    per_rule: dict[str, int] = {}
    for line in listed:
        _, comment, state = line.split("|")
        assert state == "COMPLETED", line
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment).group(1)
        per_rule[rule] = per_rule.get(rule, 0) + 1
    assert per_rule == {rule: int(n) for rule, n in planned.items()}, (per_rule, planned)
    assert per_rule["train"] == 1 and per_rule["tfrecord"] == 3

    local_files = compared_files(local / "results")
    assert local_files == compared_files(slurm / "results")
    assert len([p for p in local_files if p.suffix == ".tfrecord"]) == 9
    for relative in local_files:
        assert (local / "results" / relative).read_bytes() == (slurm / "results" / relative).read_bytes(), relative

    for workdir in (local, slurm):
        summary = yaml.safe_load((workdir / "results/tiny/train/train_summary.json").read_text())
        assert summary["checkpoint"] == f"ckpt-{STEPS}"
