"""Accuracy from scratch within a wall-clock budget: both forms of a model, every exported file against its SavedModel.

For each dataset one real `snakemake` run trains on one split: ``recipe``, the
shipped config.yaml's ``ssd_mobilenet`` entry with ``time_budget`` set and
``classifier: auto``, so both of its forms train (the detector alone, and the
two-stage model whose class-agnostic detector's boxes a classifier names, each
held to the budget) and the workflow keeps the one with the higher val AP50;
on the real sets also ``baseline``, the recipe the workflow shipped before
training length followed the data (600 steps at 320, batch 8, Adam 0.002,
the detector alone). Every form is exported (SavedModel, TFLite float32,
float16, int8; the baseline as a SavedModel only) and evaluated on the test
split; the tables give AP50 / AP per form, each TFLite form's difference from
its SavedModel, and the choice: both val scores, the kept form, and whether it
is within 0.02 AP50 of the better form on test (the choice never sees test).

Datasets: raccoon (../shared, the workflow's own split), BCCD and chess
(../shared, their published train/val/test splits through a pins file made
from ``splits/``), and the generated demo and look-alike sets (the recipe
alone, at ``--small-budget``).

    python bench/accuracy.py                       # 12m on raccoon, BCCD and chess, 4m on the generated sets
    python bench/accuracy.py --budget 4m --datasets raccoon   # one quick iteration
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import yaml

from artdet.evaluate.metrics import EXPORT_TOLERANCE as TOLERANCE  # the workflow's own flag
from common import CACHE, ROOT, SHARED, commit, run_snakemake, save

FORMS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8")
# The recipe before this benchmark existed: config.yaml's ssd_mobilenet entry at commit a707cc9.
BASELINE = {
    "preset": "ssd_mobilenet",
    "input_size": 320,
    "batch_size": 8,
    "train_steps": 600,
    "learning_rate": 0.002,
    "warmup_steps": 100,
    "steps_per_loop": 20,
    "checkpoint_every": 100,
    "validate_every": 200,
    "export_checkpoint": "final",
    "overrides": {},
}


# The split and per-side label tables of a real set's run: bench/peers.py trains YOLOv8n on the same
# split and reuses the run's recipe (same commit, same budget) instead of training it again.
SPLIT_TABLES = ("results/data/split.csv", *(f"results/data/{side}_labels.csv" for side in ("train", "val", "test")))
# The real sets and whether they come with a published split (splits/{train,val,test}.txt).
REAL = {"raccoon": False, "bccd": True, "chess": True}
# The better form on test may beat the kept one by at most this much AP50 (the choice is made on val).
CHOICE_TOLERANCE = 0.02


def shipped_recipe(budget: str) -> dict:
    """config.yaml's ssd_mobilenet entry with a time budget instead of its length, both forms trained."""
    model = dict(yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["ssd_mobilenet"])
    for key in ("epochs", "train_steps"):
        model.pop(key, None)
    model["time_budget"] = budget
    model["classifier"] = "auto"
    return model


def published_pins(dataset: str, out: Path) -> Path:
    """A dataset's published split as a pins file (train, val and test stems)."""
    lines = []
    for side in ("train", "val", "test"):
        stems = (SHARED / "datasets" / dataset / "splits" / f"{side}.txt").read_text().split()
        lines += [f"{stem}.jpg,{side}" for stem in stems]
    out.write_text("\n".join(lines) + "\n")
    return out


def generated(variant: str, count: int = 360) -> Path:
    from artdet.data.demo import generate

    folder = CACHE / f"accuracy-data-{variant}-{count}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate(folder, count=count, seed=0, variant=variant)
        (folder / ".complete").write_text("ok\n")
    return folder


def run_workflow(
    name: str,
    dataset: Path,
    models: dict,
    forms: dict[str, tuple[str, ...]],
    published_split: bool = False,
    extra_targets: tuple[str, ...] = (),
    rerun: bool = True,
) -> dict:
    """A fresh workflow run in bench/.cache/accuracy/NAME; returns each model form's metrics per exported file.

    ``forms`` names what each model is exported to and evaluated as (the
    baseline needs only its SavedModel: the exports' fidelity is the recipe's).
    A model with ``classifier: auto`` also gives ``<model>/two_stage`` and its
    ``form.json``. ``rerun=False`` reads the last run's results instead of training again.
    """
    work = CACHE / "accuracy" / name
    auto = [m for m in models if models[m].get("classifier") == "auto"]
    folders = {m: [m, f"{m}/two_stage"] if m in auto else [m] for m in models}
    if not rerun:
        return collect(work, models, folders)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "commit.txt").write_text(commit() + "\n")  # what --from-cache reports the figures against
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(
        {
            "dataset": str(dataset),
            "train_models": list(models),
            "models": models,
            "export": {"tflite": ["float32", "float16", "int8"]},
        }
    )
    if published_split:
        config["split"] = {**config["split"], "pins": str(published_pins(dataset.name, work / "pins.csv"))}
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # The recipe's forms are what the workflow decides (auto builds one form on a one-class set).
    targets = [f"results/{m}/evaluation/{form}/metrics.json" for m in models if m not in auto for form in forms[m]]
    targets += [f"results/{m}/form.json" for m in auto] + list(extra_targets)
    targets += ["results/comparison.csv"] if auto else []
    seconds = run_snakemake(work, targets, name)
    print(f"{name}: workflow {seconds:.0f} s", flush=True)
    return collect(work, models, folders)


def collect(work: Path, models: dict, folders: dict[str, list[str]]) -> dict:
    """Each model form's training summary (with the wall-clock its budget covers) and metrics per exported file."""
    out = {}
    for model in models:
        for folder in folders[model]:
            results = work / "results" / folder
            if not (results / "train" / "train_summary.json").exists():
                continue  # a form the workflow did not build (one class: no two-stage form)
            summary = json.loads((results / "train" / "train_summary.json").read_text())
            summary["budget_seconds_used"] = budget_seconds(work, folder)
            found = {}
            for form in FORMS:
                path = results / "evaluation" / form / "metrics.json"
                if path.exists():
                    found[form] = json.loads(path.read_text())
            out[folder] = {"train": summary, "forms": found}
        choice = work / "results" / model / "form.json"
        if choice.exists():
            out[model]["choice"] = json.loads(choice.read_text())
    return out


def job_seconds(snakemake_log: Path, rule: str) -> dict[str, float]:
    """Wall-clock seconds of the ``rule`` jobs, summed by their wildcards (``model=recipe``; ``""`` for none).

    A job's time runs from Snakemake starting it (the process start of ``artdet train``) to
    Snakemake seeing it finished (the final model written): the whole of what a time budget
    promises, set-up and the final validation included, to the second.
    """
    text = snakemake_log.read_text()
    started: dict[str, tuple[str, datetime]] = {}
    seconds: dict[str, float] = {}
    parts = re.split(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", text, flags=re.M)[1:]
    for stamp, body in zip(parts[::2], parts[1::2], strict=True):
        when = datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y")
        begun = re.match(r"\s*(?:local)?rule (\w+):", body)
        if begun and begun.group(1) == rule:
            wildcards = re.search(r"wildcards: (.*)$", body, re.M)
            started[re.search(r"jobid: (\d+)", body).group(1)] = (wildcards.group(1) if wildcards else "", when)
        for job in re.findall(rf"Finished jobid: (\d+) \(Rule: {rule}\)", body):
            key, start = started[job]
            seconds[key] = seconds.get(key, 0.0) + (when - start).total_seconds()
    return seconds


def budget_seconds(work: Path, folder: str) -> float | None:
    """Wall-clock seconds a time budget covers: the training job, and for a two-stage form its classifier's jobs."""
    log = work / "snakemake.log"
    total = job_seconds(log, "train").get(f"model={folder}")
    if total is not None and folder.endswith("/two_stage"):
        total += sum(job_seconds(log, "box_features").values()) + sum(job_seconds(log, "box_classifier").values())
    return total


def choice_row(dataset: str, model: str, results: dict) -> list | None:
    """Both forms' val and test AP50, the kept form, and whether it is within CHOICE_TOLERANCE of the better on test."""
    choice = results[model].get("choice")
    if choice is None:
        return None
    if f"{model}/two_stage" not in results:  # the workflow built one form (one class, or no val split)
        detector = results[model]["forms"]["saved_model"]
        free = f"{detector['class_free']['AP50']:.3f}" if "class_free" in detector else ""
        return [dataset, "", "", f"detector ({choice['reason']})", f"{detector['AP50']:.3f}", "", free, "yes"]
    test = {
        "detector": results[model]["forms"]["saved_model"]["AP50"],
        "two_stage": results[f"{model}/two_stage"]["forms"]["saved_model"]["AP50"],
    }
    kept = choice["kept"]
    fine = test[kept] >= max(test.values()) - CHOICE_TOLERANCE
    return [
        dataset,
        f"{choice['val']['detector']['AP50']:.3f}",
        f"{choice['val']['two_stage']['AP50']:.3f}",
        kept,
        f"{test['detector']:.3f}",
        f"{test['two_stage']:.3f}",
        f"{results[model]['forms']['saved_model']['class_free']['AP50']:.3f}",
        "yes" if fine else "NO",
    ]


def rows_of(dataset: str, results: dict, budgets: dict[str, str]) -> list[list]:
    """One row per model form and exported file; ``budgets`` maps a model to its time_budget."""
    rows = []
    for model, result in results.items():
        train = result["train"]
        for form, m in result["forms"].items():
            versus = m.get("versus_reference") or {}
            diff = versus.get("difference") or {}
            rows.append(
                [
                    dataset,
                    model,
                    form,
                    f"{m['AP50']:.3f}",
                    f"{m['AP']:.3f}",
                    f"{m['AR100']:.3f}",
                    "" if not diff else f"{diff['AP50']:+.3f}",
                    "" if not diff else f"{diff['AP']:+.3f}",
                    ""
                    if not versus
                    else ("LOSSY" if versus["lossy"] else "DIFFERS" if versus.get("differs") else "ok"),
                    train["train_steps"],
                    "" if train.get("budget_seconds_used") is None else f"{train['budget_seconds_used'] / 60:.1f}",
                    budgets.get(model.split("/")[0], ""),
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="12m", help="time_budget of the recipe on raccoon and BCCD (default 12m)")
    parser.add_argument("--small-budget", default="4m", help="time_budget on the generated sets (default 4m)")
    parser.add_argument("--datasets", nargs="+", default=[*REAL, "demo", "lookalike"])
    parser.add_argument("--no-baseline", action="store_true", help="train the recipe alone")
    parser.add_argument(
        "--from-cache", action="store_true", help="tabulate the last run of each dataset (bench/.cache) again"
    )
    parser.add_argument(
        "--name", default="accuracy", help="results name (bench/results/NAME.json, its BENCHMARKS.md section)"
    )
    args = parser.parse_args()

    for dataset in args.datasets:
        real = dataset in REAL
        models = {"recipe": shipped_recipe(args.budget if real else args.small_budget)}
        forms = {"recipe": FORMS, "baseline": ("saved_model",)}
        if real and not args.no_baseline:
            models = {"baseline": BASELINE, **models}
        if real:
            folder = SHARED / "datasets" / dataset
            if not folder.is_dir():
                raise SystemExit(f"{folder} is missing: the shared datasets are needed for this benchmark")
        else:
            folder = generated("gallery" if dataset == "demo" else "lookalike")
        results = run_workflow(
            dataset,
            folder,
            models,
            forms,
            published_split=REAL.get(dataset, False),
            extra_targets=SPLIT_TABLES if real else (),
            rerun=not args.from_cache,
        )
        # One section per set, saved as soon as the set is done: a later set's failure keeps it,
        # and `--datasets X` refreshes X's section alone.
        save_dataset(args, dataset, models, results)


def save_dataset(args: argparse.Namespace, dataset: str, models: dict, results: dict) -> None:
    """bench/results/NAME_DATASET.json: the set's rows per model form and exported file, and the choice."""
    budget = args.budget if dataset in REAL else args.small_budget
    data = {
        model: {
            "train": r["train"],
            "forms": {
                f: {k: m[k] for k in ("AP", "AP50", "AP75", "AR100", "num_images", "num_boxes") if k in m}
                | {"versus_reference": m.get("versus_reference"), "latency_ms": m["latency_ms"]["median"]}
                for f, m in r["forms"].items()
            },
            "choice": r.get("choice"),
        }
        for model, r in results.items()
    }
    budgets = {m: spec.get("time_budget", "") for m, spec in models.items()}
    rows = rows_of(dataset, results, budgets)
    choice = choice_row(dataset, "recipe", results)
    print("\n".join(" | ".join(str(c) for c in row) for row in [*([choice] if choice else []), *rows]), flush=True)
    headers = ["dataset", "model", "form", "AP50", "AP", "AR100", "dAP50", "dAP", "vs SavedModel", "steps"]
    headers += ["train min (job, whole)", "budget"]
    worst = max(
        (
            -min(v["difference"]["AP50"], v["difference"]["AP"])
            for r in data.values()
            for f in r["forms"].values()
            if (v := f["versus_reference"])
        ),
        default=0.0,
    )
    choice_headers = ["dataset", "val AP50 detector", "val AP50 two-stage", "kept", "test AP50 detector"]
    choice_headers += ["test AP50 two-stage", "class-free AP50 detector", f"kept within {CHOICE_TOLERANCE} on test"]
    baseline = "against the baseline (600 steps)" if "baseline" in models else "alone"
    save(
        f"{args.name}_{dataset}",
        headline(dataset, data, choice),
        {
            f"From scratch on a {os.cpu_count()}-core CPU: recipe with time_budget {budget} {baseline}; one run; a "
            f"TFLite form is LOSSY when it loses more than {TOLERANCE} AP50 or AP against its SavedModel (DIFFERS when "
            "it gains as much); recipe/two_stage is the two-stage form (class-agnostic detector + box classifier); "
            "train min is the whole training job (process start to final model, from Snakemake's log), with the box "
            "classifier's jobs for a two-stage form, against its budget": (headers, rows),
            "classifier: auto's choice, made on the val split, scored on test (SavedModels; class-free AP50: the "
            "detector form's boxes with their names ignored)": (choice_headers, [choice] if choice else []),
        },
        {"dataset": dataset, "budget": budget, "results": data, "largest_tflite_loss": worst},
        measured_at=run_commits([dataset]) if args.from_cache else None,
    )


def headline(dataset: str, data: dict, choice: list | None) -> tuple[str, float, str]:
    """The section's one figure: the test AP50 of the form the workflow kept (chosen on val), SavedModel."""
    kept = choice[3].split(" ")[0] if choice else "detector"
    form = "recipe/two_stage" if kept == "two_stage" else "recipe"
    return f"{dataset} test AP50 of the kept form ({kept}), SavedModel", data[form]["forms"]["saved_model"]["AP50"], ""


def run_commits(datasets: list[str]) -> str:
    """The commit the cached runs were made at (each run's commit.txt); ``unknown`` when they differ or lack one."""
    found = {
        (CACHE / "accuracy" / d / "commit.txt").read_text().strip()
        if (CACHE / "accuracy" / d / "commit.txt").exists()
        else "unknown"
        for d in datasets
    }
    return found.pop() if len(found) == 1 else "unknown"


if __name__ == "__main__":
    main()
