"""Accuracy from scratch within a wall-clock budget, every exported form against its SavedModel.

For each dataset one real `snakemake` run trains two models side by side on the
same split: ``baseline``, the recipe the workflow shipped before training
length followed the data (600 steps at 320, batch 8, Adam 0.002), and
``recipe``, the shipped config.yaml's ``ssd_mobilenet`` entry with
``time_budget`` set. Both are exported (SavedModel, TFLite float32, float16,
int8; the baseline as a SavedModel only) and evaluated on the test split; the
table gives AP50 / AP per form and each TFLite form's difference from its
SavedModel.

Datasets: raccoon (../shared, the workflow's own split), BCCD (../shared, its
published train/val/test split through a pins file made from ``splits/``),
and the generated demo and look-alike sets (the recipe alone, at
``--small-budget``: there the question is only whether the exports keep the
SavedModel's accuracy).

    python bench/accuracy.py                       # 12m on raccoon and BCCD, 4m on the generated sets
    python bench/accuracy.py --budget 4m --datasets raccoon   # one quick iteration
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from artdet.evaluate.metrics import EXPORT_TOLERANCE as TOLERANCE  # the workflow's own flag
from common import CACHE, ROOT, SHARED, save

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


def shipped_recipe(budget: str) -> dict:
    """config.yaml's ssd_mobilenet entry with a time budget instead of its length."""
    model = dict(yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["ssd_mobilenet"])
    for key in ("epochs", "train_steps"):
        model.pop(key, None)
    model["time_budget"] = budget
    return model


def bccd_pins(out: Path) -> Path:
    """BCCD's published split as a pins file (train, val and test stems)."""
    lines = []
    for side in ("train", "val", "test"):
        stems = (SHARED / "datasets" / "bccd" / "splits" / f"{side}.txt").read_text().split()
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
) -> dict:
    """A fresh workflow run in bench/.cache/accuracy/NAME; returns each model's metrics per form.

    ``forms`` names what each model is exported to and evaluated as (the
    baseline needs only its SavedModel: the exports' fidelity is the recipe's).
    """
    work = CACHE / "accuracy" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
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
        config["split"] = {**config["split"], "pins": str(bccd_pins(work / "pins.csv"))}
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [f"results/{model}/evaluation/{form}/metrics.json" for model in models for form in forms[model]]
    targets += extra_targets
    command = [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--directory", str(work)]
    command += ["--configfile", str(work / "config.yaml"), "--cores", "all", "--resources", "gpu=1"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    with open(work / "snakemake.log", "w") as log:
        result = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"{name}: snakemake failed, see {work / 'snakemake.log'}")
    print(f"{name}: workflow {time.perf_counter() - start:.0f} s", flush=True)
    out = {}
    for model in models:
        results = work / "results" / model
        summary = json.loads((results / "train" / "train_summary.json").read_text())
        forms = {}
        for form in FORMS:
            path = results / "evaluation" / form / "metrics.json"
            if path.exists():
                forms[form] = json.loads(path.read_text())
        out[model] = {"train": summary, "forms": forms}
    return out


def rows_of(dataset: str, results: dict) -> list[list]:
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
                    "" if not versus else ("LOSSY" if versus["lossy"] else "ok"),
                    train["train_steps"],
                    f"{train['seconds'] / 60:.1f}",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="12m", help="time_budget of the recipe on raccoon and BCCD (default 12m)")
    parser.add_argument("--small-budget", default="4m", help="time_budget on the generated sets (default 4m)")
    parser.add_argument("--datasets", nargs="+", default=["raccoon", "bccd", "demo", "lookalike"])
    parser.add_argument("--no-baseline", action="store_true", help="train the recipe alone")
    args = parser.parse_args()

    all_rows, data = [], {}
    for dataset in args.datasets:
        real = dataset in ("raccoon", "bccd")
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
        results = run_workflow(dataset, folder, models, forms, published_split=dataset == "bccd")
        data[dataset] = {
            model: {
                "train": r["train"],
                "forms": {
                    f: {k: m[k] for k in ("AP", "AP50", "AP75", "AR100", "num_images", "num_boxes") if k in m}
                    | {"versus_reference": m.get("versus_reference"), "latency_ms": m["latency_ms"]["median"]}
                    for f, m in r["forms"].items()
                },
            }
            for model, r in results.items()
        }
        all_rows += rows_of(dataset, results)
        print("\n".join(" | ".join(str(c) for c in row) for row in rows_of(dataset, results)), flush=True)

    headers = ["dataset", "model", "form", "AP50", "AP", "AR100", "dAP50", "dAP", "vs SavedModel", "steps", "train min"]
    worst = max(
        (
            -min(v["difference"]["AP50"], v["difference"]["AP"])
            for d in data.values()
            for r in d.values()
            for f in r["forms"].values()
            if (v := f["versus_reference"])
        ),
        default=0.0,
    )
    recipe = next((d["recipe"]["forms"]["saved_model"]["AP50"] for n, d in data.items() if n == "raccoon"), None)
    save(
        "accuracy",
        ("raccoon AP50, recipe, SavedModel" if recipe is not None else "largest TFLite loss", recipe or worst, ""),
        {
            f"From scratch on a {os.cpu_count()}-core CPU: recipe with time_budget {args.budget} (generated sets "
            f"{args.small_budget}) against the baseline (600 steps); one run each; a TFLite form is LOSSY when it "
            f"loses more than {TOLERANCE} AP50 or AP against its SavedModel": (headers, all_rows)
        },
        {"budget": args.budget, "small_budget": args.small_budget, "datasets": data, "largest_tflite_loss": worst},
    )


if __name__ == "__main__":
    main()
