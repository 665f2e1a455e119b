# artdet: from a folder of LabelImg-labelled photos to an evaluated, exported detector.
#
#   snakemake --cores all --resources gpu=1
#
# Each stage is a rule in rules/<role>.smk that calls `artdet <command>`; the logic
# lives in src/artdet/<role>/ (data, train, evaluate, deploy). The README's
# "Where each output lands" maps every rule to its command and module.

import sys

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))


configfile: "config.yaml"


validate(config, "src/artdet/config.schema.yaml")


include: "rules/common.smk"
include: "rules/inputs.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/evaluate.smk"
include: "rules/classify.smk"
include: "rules/two_stage.smk"
include: "rules/review.smk"


# `snakemake data`: only the data stages (TFRecords, report, statistics, tables).
rule data:
    input:
        expand(
            f"{DATA}/records/{{side}}-{{shard}}.tfrecord",
            side=SIDES,
            shard=SHARD_NAMES,
        ),
        f"{DATA}/label_map.pbtxt",
        f"{DATA}/validation_report.html",
        f"{DATA}/stats/stats.json",
        f"{DATA}/split.csv",
        (
            expand(f"{DATA}/{{split}}.record", split=SIDES)
            if config["records"]["unsharded"]
            else []
        ),


# `snakemake classify --config classify_dataset=PATH`: the artwork classifier alone.
rule classify:
    input:
        classify_targets(),


rule all:
    default_target: True
    input:
        rules.data.input,
        classify_targets() if config.get("classify_dataset") else [],
        all_metrics(),
        form_choices(),
        "results/comparison.csv",
        expand("results/{model}/training_loss.png", model=all_forms()),
