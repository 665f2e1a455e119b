# Shared helpers: where the data is and which models to build.

import sys

from snakemake.settings.types import DeploymentMethod

from artdet.dataset import IMAGE_SUFFIXES

# Rules run the package's command line (`python -m artdet ...`) with the interpreter on
# PATH; this checkout's src/ goes on PYTHONPATH so that it imports in any environment
# (the project's venv, or a conda env made by --sdm conda).
# (The prefix is formatted like a shell command, hence the doubled braces.)
# Without --sdm conda, `python` is the interpreter running Snakemake (e.g. .venv/bin/python),
# even when the virtualenv is not activated.
SRC = str(Path(workflow.basedir) / "src")
PREFIX = f'export PYTHONPATH="{SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    PREFIX += f'export PATH="{Path(sys.executable).parent}:$PATH"; '
shell.prefix(PREFIX)
DATASET = Path(config["dataset"])
DATA = "results/data"
LOGS = "results/logs"

unknown_models = [m for m in config["train_models"] if m not in config["models"]]
if unknown_models:
    raise WorkflowError(
        f"config.yaml: train_models lists {unknown_models}, which are not defined under 'models:' "
        f"(defined: {sorted(config['models'])})"
    )


def dataset_files():
    """Every image and XML file under the dataset folder; adding one reruns the data stages."""
    if not DATASET.is_dir():
        raise WorkflowError(
            f"dataset folder {DATASET} does not exist: set 'dataset:' in config.yaml, pass "
            f"--config dataset=PATH, or generate the demo with `artdet demo-data {DATASET}`"
        )
    wanted = IMAGE_SUFFIXES | {".xml"}
    return sorted(
        str(p)
        for p in DATASET.rglob("*")
        if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")
    )


def model_config(wildcards):
    """One model entry of config.yaml as JSON, with its name, for `artdet pipeline-config`."""
    import json

    return json.dumps(
        {"name": wildcards.model, **config["models"][wildcards.model]}, sort_keys=True
    )
