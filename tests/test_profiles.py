"""Every profile under profiles/ plans the whole workflow (a dry run), with its per-rule resources."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from workflow_helpers import workflow_command

PROFILES = sorted(p.name for p in (ROOT / "profiles").iterdir() if (p / "config.yaml").is_file())


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder with 4 demo photos and a config for them."""
    from artdet.data.demo import generate

    workdir = tmp_path_factory.mktemp("profiles")
    generate(workdir / "photos", count=4, seed=1)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(dataset="photos", records={"shards": 2}, train_models=["ssd_mobilenet"])
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def dry_run(workdir: Path, env: dict, profile: str, *args: str) -> str:
    """`snakemake -n --profile profiles/<profile>` in ``workdir``; its console output."""
    command = workflow_command(workdir, "--profile", str(ROOT / "profiles" / profile), "-n", *args)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake -n --profile profiles/{profile} failed:\n{output[-4000:]}"
    return output


def job_resources(output: str, rule: str) -> dict[str, str]:
    """The resources line of the first job of ``rule`` in a dry run's output."""
    block = output[output.index(f"rule {rule}:") :]
    line = re.search(r"^\s*resources: (.*)$", block, re.M).group(1)
    return dict(item.split("=", 1) for item in line.split(", "))


def test_every_profile_is_tested() -> None:
    assert set(PROFILES) == {"default", "slurm", "gpu-vm", "kubernetes"}


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_dry_run(profile: str, tiny_workdir: Path, venv_env: dict, tmp_path: Path) -> None:
    settings = yaml.safe_load((ROOT / "profiles" / profile / "config.yaml").read_text())
    args: list[str] = []
    if settings.get("default-storage-provider"):
        # Nothing remote is reachable here: a local folder stands in for the bucket, holding the
        # dataset as the bucket would.
        store = tmp_path / "bucket"
        shutil.copytree(tiny_workdir / "photos", store / "photos")
        args = ["--default-storage-provider", "fs", "--default-storage-prefix", str(store)]
    output = dry_run(tiny_workdir, venv_env, profile, *args)
    assert "This was a dry-run" in output
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", output[output.index("Job stats:") :], re.M))
    # The shipped classifier: auto trains both forms of the model (4 evaluated files each); each
    # export scores its form on val.
    assert jobs["validate"] == "2" and jobs["train"] == "2" and jobs["evaluate"] == "8", jobs
    assert jobs["export"] == "2" and jobs["choose_form"] == "1" and jobs["box_features"] == "2", jobs
    train = job_resources(output, "train")
    if settings.get("executor") == "slurm":
        # Memory, time and the GPU as gres (not --gpus) come from the profile and the rule.
        assert train["mem_mb"] == "16000" and train["runtime"] == "720" and train["gpu"] == "0", train
        assert job_resources(output, "validate")["mem_mb"] == "2000"
    else:
        assert train["gpu"] == "1", train
