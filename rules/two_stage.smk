# Two-stage models (models.<name>.classifier: on or auto): a classifier trained on crops of the
# train split's boxes, cut from the original photos, names the boxes of a class-agnostic
# detector (results/<model>/two_stage/). Under auto both forms are scored on the val split and
# results/<model>/form.json says which one is kept.

BOXES = "results/box_classifier"
BOX_FEATURES = shard_outputs(f"{BOXES}/features/{{shard}}.npz")
BOX_REPORTS = shard_outputs(f"{BOXES}/features/{{shard}}.json")
# How crops become features: the same at training and at detection time (stored in the model).
SIFT_OPTIONS = (
    f"--crop-padding {CFG['crop_padding']} --max-side {CFG['max_side']} --upscale-to {CFG['upscale_to']} "
    f"--max-features {CFG['max_features']} --contrast-threshold {CFG['contrast_threshold']}"
)


# Per data shard, so that adding photos recomputes the features of their shard only; only the
# train side's boxes are cropped (the report counts the val and test boxes it left alone).
rule box_features:
    input:
        validated=f"{DATA}/shards/{{shard}}/validated.json",
        manifest=f"{DATA}/shards/{{shard}}/manifest.json",
        split=f"{DATA}/shards/{{shard}}/split.csv",
    output:
        features=f"{BOXES}/features/{{shard}}.npz",
        report=f"{BOXES}/features/{{shard}}.json",
    log:
        f"{LOGS}/box_classifier/features_{{shard}}.log",
    conda:
        "../envs/artdet.yaml"
    params:
        dataset=lambda wildcards: str(DATASET),
        options=f"{SIFT_OPTIONS} --min-side {CFG['min_side']}",
    shell:
        "python -m artdet box-features {params.dataset:q} {input.validated} {input.manifest} {input.split} "
        "{output.features} {output.report} {params.options} > {log} 2>&1"


rule box_classifier:
    input:
        features=BOX_FEATURES,
        reports=BOX_REPORTS,
    output:
        model=f"{BOXES}/model.joblib",
        summary=f"{BOXES}/summary.json",
    log:
        f"{LOGS}/box_classifier/train.log",
    conda:
        "../envs/artdet.yaml"
    params:
        out_dir=lambda wildcards, output: str(Path(output.model).parent),
        options=(
            f"{SIFT_OPTIONS} --vocabulary-size {CFG['vocabulary_size']} --svm-c {CFG['svm_c']} "
            f"--class-weight {CFG['class_weight']} --colour-weight {CFG['colour_weight']} "
            f"--seed {CFG['seed']} --top-k {CFG['top_k']} "
            f"--verify {str(CFG['box_verify']).lower()} --min-inliers {CFG['min_inliers']} "
            f"--references {CFG['references']}"
        ),
    shell:
        "python -m artdet box-classifier {params.out_dir} --features {input.features} --reports {input.reports} "
        "{params.options} > {log} 2>&1"


# The val metrics come from the export rule, which scores each exported form on the val split.
rule choose_form:
    input:
        detector=lambda wildcards: auto_val(wildcards.name, wildcards.name),
        two_stage=lambda wildcards: auto_val(
            wildcards.name, f"{wildcards.name}/{TWO_STAGE}"
        ),
    output:
        json="results/{name}/form.json",
        html=report(
            "results/{name}/form.html",
            caption="../report/form.rst",
            category="Forms",
            subcategory="{name}",
        ),
    log:
        f"{LOGS}/{{name}}/choose_form.log",
    wildcard_constraints:
        name="[A-Za-z0-9_-]+",
    conda:
        "../envs/artdet.yaml"
    params:
        mode=lambda wildcards: classifier_mode(
            config["models"][wildcards.name].get("classifier")
        ),
        val=lambda wildcards, input: (
            f"--detector-val {input.detector} --two-stage-val {input.two_stage}"
            if input.detector
            else ""
        ),
        classes=lambda wildcards: len(label_map_classes()),
    shell:
        "python -m artdet choose-form {output.json} --model {wildcards.name} --mode {params.mode} "
        "--classes {params.classes} {params.val} > {log} 2>&1"
