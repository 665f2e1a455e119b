"""anchors: fit against Model Garden's anchors and against the rule it replaced, at the same steps.

Where a set's small boxes fall below Model Garden's smallest anchor (32 px at
the input), ``anchors: fit`` brings the smallest anchor down to them and no
further. The rule before it centred the anchors' span on the boxes, which moved
them further down and every box to a coarser feature map. Each set trains three
detectors, the accuracy bench's 600-step baseline recipe with only the anchors
changed: ``default`` (Model Garden's), ``fit`` (the shipped rule) and
``centred`` (the earlier rule's ``anchor_size``, the fitted aspect ratios kept).
The rule was chosen on val AP50 at the last step; test AP50 and AP, which chose
nothing, are reported beside it.

Datasets: chess and BCCD (../shared, their published splits), the two sets
whose boxes leave the default anchors.

    python bench/anchors.py [--datasets chess bccd]
"""

from __future__ import annotations

import argparse
import json

import yaml

from accuracy import BASELINE, REAL, run_workflow
from common import CACHE, SHARED, save

# The earlier rule's anchor_size on each set's train boxes (span centred on their 5th-95th percentile).
CENTRED = {"chess": 1.0, "bccd": 1.5}


def models_for(dataset: str) -> dict:
    """The three detectors: the baseline recipe with Model Garden's, the fitted and the centred anchors."""
    centred = {"task.model.anchor.anchor_size": CENTRED[dataset]}
    return {
        "default": {**BASELINE, "anchors": "default"},
        "fit": {**BASELINE, "anchors": "fit"},
        "centred": {**BASELINE, "anchors": "fit", "overrides": centred},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(CENTRED), choices=list(CENTRED))
    args = parser.parse_args()
    rows, data = [], {}
    for dataset in args.datasets:
        folder = SHARED / "datasets" / dataset
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: the shared datasets are needed for this benchmark")
        models = models_for(dataset)
        name = f"anchors-{dataset}"
        results = run_workflow(
            name, folder, models, dict.fromkeys(models, ("saved_model",)), published_split=REAL[dataset]
        )
        data[dataset] = {}
        for model in models:
            run = CACHE / "accuracy" / name / "results" / model
            anchor = yaml.safe_load((run / "train" / "params.yaml").read_text())["task"]["model"]["anchor"]
            val = json.loads((run / "train" / "validation.json").read_text())[-1]
            test = results[model]["forms"]["saved_model"]
            entry = {
                "anchor_size": anchor["anchor_size"],
                "aspect_ratios": anchor["aspect_ratios"],
                "steps": val["step"],
                "val_AP50": val["AP50"],
                "test_AP50": test["AP50"],
                "test_AP": test["AP"],
            }
            data[dataset][model] = entry
            ratios = ", ".join(f"{r:g}" for r in entry["aspect_ratios"])
            rows.append(
                [
                    dataset,
                    model,
                    f"{entry['anchor_size']:g}",
                    ratios,
                    entry["steps"],
                    f"{entry['val_AP50']:.3f}",
                    f"{entry['test_AP50']:.3f}",
                    f"{entry['test_AP']:.3f}",
                ]
            )
    headers = ["dataset", "anchors", "anchor_size", "aspect ratios", "steps", "val AP50", "test AP50", "test AP"]
    first = data[args.datasets[0]]
    save(
        "anchors",
        (
            f"{args.datasets[0]} val AP50, fitted anchors minus centred",
            first["fit"]["val_AP50"] - first["centred"]["val_AP50"],
            "AP50",
        ),
        {"ssd_mobilenet at 320, 600 steps, batch 8, from scratch; only the anchors differ": (headers, rows)},
        data,
    )


if __name__ == "__main__":
    main()
