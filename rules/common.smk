# Start-up: the shell prefix, paths and the checks of config.yaml that run before any job.
# Input and parameter functions are in rules/inputs.smk.

import sys

from snakemake.settings.types import DeploymentMethod

from artdet.classify.boxes import TWO_STAGE
from artdet.data.dataset import shard_name
from artdet.train.schedule import ScheduleError, length_unit
from artdet.data.split import SIDES, PinsError, check_fractions, read_pins

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
# A model's length (epochs, train_steps or time_budget): checked before any work, naming the model.
for _name, _model in config["models"].items():
    try:
        length_unit({"name": _name, **_model})
    except ScheduleError as exc:
        raise WorkflowError(f"config.yaml: {exc}")


try:
    check_fractions(config["split"]["test_fraction"], config["split"]["val_fraction"])
except ValueError as exc:
    raise WorkflowError(f"config.yaml: {exc}")


SHARDS = config["records"]["shards"]
SHARD_NAMES = [shard_name(index, SHARDS) for index in range(SHARDS)]


def _pins():
    path = config["split"].get("pins")
    if not path:
        return {}
    try:
        return read_pins(path)
    except FileNotFoundError:
        raise WorkflowError(f"split.pins: file {path} does not exist")
    except PinsError as exc:
        raise WorkflowError(str(exc))


PINS = _pins()


# Exporting the best checkpoint needs validation during training, which needs a val split.
_no_val = config["split"]["val_fraction"] == 0 and "val" not in PINS.values()
_best_without_val = [
    m
    for m in config["train_models"]
    if config["models"][m].get("export_checkpoint") == "best" and _no_val
]
if _best_without_val:
    raise WorkflowError(
        f"config.yaml: models {_best_without_val} set export_checkpoint: best, which is picked by the "
        "validation during training on the val split, but split: val_fraction is 0; set split: "
        "val_fraction (e.g. 0.1) or export_checkpoint: final"
    )


# The artwork classifier branch (rules/classify.smk).
CLASSIFY = "results/classify"
CLASSIFY_SHARDS = config["classify"]["shards"]
CLASSIFY_SHARD_NAMES = [shard_name(i, CLASSIFY_SHARDS) for i in range(CLASSIFY_SHARDS)]
CFG = config["classify"]


# A model's forms: its detector in results/<model>/, and its two-stage form (a class-agnostic
# detector whose boxes a classifier names) in results/<model>/two_stage/. A `{model}` wildcard
# is either folder; the settings are the model's in config.yaml.
wildcard_constraints:
    model=rf"[A-Za-z0-9_-]+(/{TWO_STAGE})?",
