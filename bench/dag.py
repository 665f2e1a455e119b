"""Snakemake planning and rebuild costs: `snakemake -n`, no-op reruns, and adding one image.

Each dataset is a folder of symbolic links to a cached generated dataset, so that
adding an image does not touch the cache. The data stages run in 16 shards; adding
one image must plan one job per per-shard stage plus the dataset-wide summaries.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from common import ROOT, generated_dataset, median, run, save

DATA_TARGETS = ["data"]
SHARDS = 16


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    start = time.perf_counter()
    result = run(command, env=env)
    return time.perf_counter() - start, result.stdout + result.stderr


def planned(text: str) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table."""
    if "Nothing to be done" in text:
        return {}
    table = text[text.index("Job stats:") : text.index("\ntotal")]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def job_count(text: str) -> int:
    if "Nothing to be done" in text:
        return 0
    for line in text.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    raise ValueError("no job stats in snakemake output")


def measure(count: int) -> dict:
    source = generated_dataset(count)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-dag-{count}-"))
    try:
        photos = workdir / "photos"
        photos.mkdir()
        for path in source.iterdir():
            if path.suffix in {".jpg", ".xml"}:
                (photos / path.name).symlink_to(path)
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        config["dataset"] = str(photos)
        config["resize"] = {"max_side": 1280, "max_bytes": 200000}
        config["records"] = {"shards": SHARDS, "unsharded": False}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))

        plan = median([snakemake(workdir, "-n", *DATA_TARGETS)[0] for _ in range(3)])
        full, _ = snakemake(workdir, *DATA_TARGETS)
        noop_plan = median([snakemake(workdir, "-n", *DATA_TARGETS)[0] for _ in range(3)])
        noop_run, text = snakemake(workdir, *DATA_TARGETS)
        assert job_count(text) == 0, "a rerun with nothing changed should do nothing"
        shutil.copy(source / "gallery_00000.jpg", photos / "added.jpg")
        shutil.copy(source / "gallery_00000.xml", photos / "added.xml")
        _, text = snakemake(workdir, "-n", *DATA_TARGETS)
        jobs_after_add = job_count(text)
        plan_after_add = planned(text)
        rebuild, _ = snakemake(workdir, *DATA_TARGETS)
        return {
            "images": count,
            "dry_run_s": round(plan, 2),
            "full_data_build_s": round(full, 1),
            "noop_dry_run_s": round(noop_plan, 2),
            "noop_run_s": round(noop_run, 2),
            "shards": SHARDS,
            "jobs_after_adding_one_image": jobs_after_add,
            "plan_after_adding_one_image": plan_after_add,
            "rebuild_after_adding_one_image_s": round(rebuild, 1),
            "rebuild_fraction_of_full": round(rebuild / full, 3),
        }
    finally:
        shutil.rmtree(workdir)


def main() -> None:
    results = [measure(1000), measure(10000)]
    headers = [
        "images",
        "snakemake -n (s)",
        "full data build (s)",
        "no-op -n (s)",
        "no-op run (s)",
        "jobs after +1 image",
        "rebuild after +1 image (s)",
        "rebuild / full",
    ]
    rows = [
        [
            r["images"],
            r["dry_run_s"],
            r["full_data_build_s"],
            r["noop_dry_run_s"],
            r["noop_run_s"],
            r["jobs_after_adding_one_image"],
            r["rebuild_after_adding_one_image_s"],
            r["rebuild_fraction_of_full"],
        ]
        for r in results
    ]
    save(
        "dag",
        ("no-op snakemake -n over 10,000 images", results[-1]["noop_dry_run_s"], "s"),
        {
            "Planning and rebuilding the data stages (the -n columns: median of 3 runs; builds and reruns: "
            "one run each)": (headers, rows)
        },
        {"runs": results},
    )


if __name__ == "__main__":
    main()
