# Input and parameter functions: which files a job reads, which forms a model builds.

import json
import shlex

from artdet.classify.boxes import classifier_mode
from artdet.data.classes import discover_classes, scan_names
from artdet.data.dataset import IMAGE_SUFFIXES, shard_of


def _index(folder, shard_names, what):
    """Every image and XML file under ``folder``, by the shard its stem hashes to (computed once per folder).

    ``what`` names the config key for the message when the folder is missing. The detector's
    dataset and the classifier's are indexed alike, so a file lands in the same kind of shard.
    """
    key = (str(folder), len(shard_names))
    if key not in _INDEXES:
        if not folder or not Path(folder).is_dir():
            demo = "artdet demo-data" + (
                " --classify" if what == "classify_dataset" else ""
            )
            raise WorkflowError(
                f"{what} folder {folder} does not exist: set '{what}:' in config.yaml, pass "
                f"--config {what}=PATH, or generate the demo with `{demo} {folder or 'PATH'}`"
            )
        wanted = IMAGE_SUFFIXES | {".xml"}
        index = {name: [] for name in shard_names}
        for path in sorted(Path(folder).rglob("*")):
            if (
                path.is_file()
                and path.suffix.lower() in wanted
                and not path.name.startswith(".")
            ):
                index[shard_names[shard_of(path.stem, len(shard_names))]].append(
                    str(path)
                )
        _INDEXES[key] = index
    return _INDEXES[key]


_INDEXES = {}


def _dataset_index():
    return _index(DATASET, SHARD_NAMES, "dataset")


def _classify_index():
    """The classify dataset's files by shard (only when a rule needs them)."""
    return _index(
        config.get("classify_dataset"), CLASSIFY_SHARD_NAMES, "classify_dataset"
    )


def shard_files(wildcards):
    """The images and XML files of one shard: adding a file reruns only its shard."""
    return _dataset_index()[wildcards.shard]


def label_map_classes():
    """config.yaml's classes, or those found in the XML files (cached, so a no-op run stays fast).

    Called from input and params functions only, so that a run that builds no detector stage
    (`snakemake classify`) never needs the detector's dataset folder.
    """
    if config.get("classes"):
        return list(config["classes"])
    if "found" not in label_map_classes.__dict__:
        xmls = [
            f
            for files in _dataset_index().values()
            for f in files
            if f.lower().endswith(".xml")
        ]
        label_map_classes.found = discover_classes(
            scan_names(xmls, Path(".snakemake/artdet/xml_names.json"))
        )
    return label_map_classes.found


def model_name(form):
    """The config.yaml name of a form's folder (`ssd_mobilenet/two_stage` -> `ssd_mobilenet`)."""
    return form.split("/")[0]


def is_two_stage(form):
    return form.split("/")[-1] == TWO_STAGE and form != TWO_STAGE


def model_entry(form):
    """config.yaml's entry of the model a form belongs to."""
    return config["models"][model_name(form)]


def classifier_setting(name):
    """A model's classifier: auto, on or off, as built.

    ``auto`` builds the detector alone without a val split (nothing to choose on) and with one
    class (nothing to name: the detector already names every box); ``on`` with one class stops.
    """
    mode = classifier_mode(config["models"][name].get("classifier"))
    if mode == "off":
        return mode
    # (Without the dataset folder, a run that builds no detector, `snakemake classify`, goes on.)
    knows_classes = bool(config.get("classes")) or DATASET.is_dir()
    if knows_classes and len(label_map_classes()) < 2:
        if mode == "on":
            raise WorkflowError(
                f"config.yaml: model {name} sets classifier: on, but the dataset has one class "
                f"({label_map_classes()}): a classifier needs two or more; set classifier: off or auto"
            )
        return "off"
    return "off" if mode == "auto" and _no_val else mode


def model_forms(name):
    """The folders under results/ that a model's classifier: setting builds."""
    two_stage = f"{name}/{TWO_STAGE}"
    return {"off": [name], "on": [two_stage], "auto": [name, two_stage]}[
        classifier_setting(name)
    ]


def all_forms():
    return [form for m in config["train_models"] for form in model_forms(m)]


def shard_pins(wildcards):
    """The pins of one shard's images as JSON (a changed pin reruns only its shard)."""
    own = {
        k: v
        for k, v in PINS.items()
        if SHARD_NAMES[shard_of(Path(k).stem, SHARDS)] == wildcards.shard
    }
    return json.dumps(own, sort_keys=True)


def shard_outputs(pattern):
    """``pattern`` (with {shard}) for every shard."""
    return expand(pattern, shard=SHARD_NAMES)


# Presets with a TFLite path (one-stage detectors); Model Garden has none for Faster R-CNN.
TFLITE_PRESETS = {"ssd_mobilenet"}


def eval_formats(model):
    """The exported forms of a model that are evaluated: the SavedModel, and its TFLite files."""
    formats = ["saved_model"]
    if model_entry(model)["preset"] in TFLITE_PRESETS:
        formats += [f"tflite_{p}" for p in config["export"]["tflite"]]
    return formats


def model_file(wildcards):
    """The exported model behind an evaluation format."""
    if wildcards.fmt == "saved_model":
        return f"results/{wildcards.model}/saved_model"
    return f"results/{wildcards.model}/{wildcards.fmt}/model.tflite"


def all_metrics():
    return [
        f"results/{form}/evaluation/{fmt}/metrics.json"
        for form in all_forms()
        for fmt in eval_formats(form)
    ]


def originals_manifests(wildcards):
    """A two-stage form's evaluation reads the original photos through the shards' manifests."""
    if not is_two_stage(wildcards.model):
        return []
    return shard_outputs(f"{DATA}/shards/{{shard}}/manifest.json")


def originals_option(wildcards, input):
    if not input.manifests:
        return ""
    return f"--originals {shlex.quote(str(DATASET))} --manifests {' '.join(input.manifests)}"


def auto_val(name, form):
    """A form's val metrics, when classifier: auto chooses between the forms ([] otherwise)."""
    if classifier_setting(name) != "auto":
        return []
    return f"results/{form}/val_evaluation/metrics.json"


def two_stage_classifier(wildcards):
    """The box classifier a two-stage form is exported with ([] for a detector)."""
    return (
        "results/box_classifier/model.joblib" if is_two_stage(wildcards.model) else []
    )


def classifier_summary(wildcards):
    """The box classifier's summary, whose seconds come off a two-stage form's time_budget."""
    if is_two_stage(wildcards.model) and model_entry(wildcards.model).get(
        "time_budget"
    ):
        return "results/box_classifier/summary.json"
    return []


def form_choices():
    """Each model's form.json: which form is kept, and both val scores under classifier: auto."""
    return [f"results/{m}/form.json" for m in config["train_models"]]


def all_cores():
    """Every core given with --cores (1 when none were given, e.g. for --report or --lint)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def pretrained_checkpoint(wildcards):
    """The fetched checkpoint a model starts from ([] for none or a local init_checkpoint)."""
    from artdet.train.presets import preset

    model = model_entry(wildcards.model)
    if model.get("init_checkpoint"):
        return []
    name = model.get("pretrained", preset(model["preset"]).get("pretrained"))
    return f"results/checkpoints/{name}/checkpoint.json" if name else []


def box_stats(wildcards):
    """stats.json for a model whose anchors are fitted to the boxes ([] otherwise)."""
    fit = model_entry(wildcards.model).get("anchors", "default") == "fit"
    return f"{DATA}/stats/stats.json" if fit else []


# Model settings that do not shape the rendered pipeline (so changing them does not retrain):
# `classifier` decides which forms are built, each rendered on its own.
EXPORT_ONLY = {"export_checkpoint", "classifier"}


def model_config(wildcards):
    """One model entry of config.yaml as JSON, with its name, for `artdet pipeline-config`."""
    model = model_entry(wildcards.model)
    return json.dumps(
        {
            "name": wildcards.model,
            **{k: v for k, v in model.items() if k not in EXPORT_ONLY},
        },
        sort_keys=True,
    )


def export_checkpoint(wildcards):
    """Which training checkpoint export uses: final (default) or best."""
    return model_entry(wildcards.model)["export_checkpoint"]


def classify_shard_files(wildcards):
    return _classify_index()[wildcards.shard]


def classify_outputs(pattern):
    return expand(pattern, shard=CLASSIFY_SHARD_NAMES)


def classify_targets():
    """What `snakemake classify` builds."""
    return [
        f"{CLASSIFY}/model.joblib",
        f"{CLASSIFY}/evaluation/metrics.json",
        f"{CLASSIFY}/data_report.json",
    ]


CLASSIFY_FEATURES = classify_outputs(f"{CLASSIFY}/features/{{shard}}.npz")
CLASSIFY_REPORTS = classify_outputs(f"{CLASSIFY}/features/{{shard}}.json")


def _executor_name():
    """The executor plugin running this workflow ("local", "slurm", "kubernetes", ...)."""
    plugin = workflow.executor_plugin
    return plugin.name if plugin is not None else "local"


def train_gres(wildcards):
    """The training job's SLURM gres: one GPU where the cluster has GPUs, none where it has none.

    Asked of `sinfo` once, by the Snakemake that submits the jobs (the executor "slurm"), so
    one profile serves GPU and CPU-only clusters; `--set-resources train:gres=gpu:a100:2`
    overrides it. Elsewhere it is empty and unused.
    """
    if _executor_name() != "slurm":
        return ""
    if "gres" not in train_gres.__dict__:
        import subprocess

        try:
            listed = subprocess.run(
                ["sinfo", "--noheader", "--format=%G"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise WorkflowError(
                f"the slurm profile asks sinfo whether the cluster has GPUs, and sinfo failed ({exc}); "
                "is this a SLURM login node? (--set-resources train:gres=gpu:1 skips the question)"
            )
        train_gres.gres = "gpu:1" if "gpu" in listed else ""
    return train_gres.gres


# The label review (rules/review.smk).
REVIEW = "results/review"
REVIEW_CFG = config["review"]
REVIEW_FOLDS = list(range(REVIEW_CFG["folds"]))


def review_model_config(wildcards):
    """The fold detector's model entry: the review's model with the review's time budget."""
    name = REVIEW_CFG["model"] or config["train_models"][0]
    if name not in config["models"]:
        raise WorkflowError(
            f"review: model {name!r} is not an entry of models: ({sorted(config['models'])})"
        )
    model = {
        k: v
        for k, v in config["models"][name].items()
        if k not in EXPORT_ONLY | {"epochs", "train_steps", "init_checkpoint"}
    }
    if model.get("anchors") == "fit":
        model["anchors"] = "default"  # stats.json covers the fold's own boxes
    return json.dumps(
        {
            "name": f"review_fold{wildcards.fold}",
            **model,
            "time_budget": REVIEW_CFG["time_budget"],
        },
        sort_keys=True,
    )


def review_pretrained(wildcards):
    from artdet.train.presets import preset

    model = config["models"][REVIEW_CFG["model"] or config["train_models"][0]]
    name = model.get("pretrained", preset(model["preset"]).get("pretrained"))
    return f"results/checkpoints/{name}/checkpoint.json" if name else []


def other_folds(wildcards):
    return [
        f"{REVIEW}/folds/fold{k}.tfrecord"
        for k in REVIEW_FOLDS
        if k != int(wildcards.fold)
    ]
