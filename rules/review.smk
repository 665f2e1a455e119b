# Label review (`snakemake review`, not part of the default run): every labelled image is
# predicted by a detector that did not train on it (review: folds, each trained for
# review: time_budget on the other folds, each fold a job of its own), and the labels that
# disagree with those predictions are ranked. Nothing in the dataset folder is changed.


rule review_folds:
    input:
        records=expand(
            f"{DATA}/records/{{side}}-{{shard}}.tfrecord",
            side=SIDES,
            shard=SHARD_NAMES,
        ),
        manifests=shard_outputs(f"{DATA}/shards/{{shard}}/manifest.json"),
    output:
        records=expand(f"{REVIEW}/folds/fold{{fold}}.tfrecord", fold=REVIEW_FOLDS),
        folds=f"{REVIEW}/folds/folds.csv",
    log:
        f"{LOGS}/review/folds.log",
    conda:
        "../envs/artdet.yaml"
    params:
        out_dir=lambda wildcards, output: str(Path(output.folds).parent),
    shell:
        "python -m artdet review-folds {input.records} --manifests {input.manifests} "
        f"--folds {REVIEW_CFG['folds']} --out-dir {{params.out_dir}} > {{log}} 2>&1"


rule review_pipeline:
    input:
        pretrained=review_pretrained,
        label_map=f"{DATA}/label_map.pbtxt",
        train=other_folds,
        val=f"{REVIEW}/folds/fold{{fold}}.tfrecord",
    output:
        f"{REVIEW}/fold{{fold}}/pipeline.yaml",
    log:
        f"{LOGS}/review/fold{{fold}}_pipeline_config.log",
    conda:
        "../envs/artdet.yaml"
    params:
        model=review_model_config,
        pretrained=lambda wildcards, input: (
            f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
    shell:
        "python -m artdet pipeline-config {output} --model-json {params.model:q} "
        "--label-map {input.label_map} --train {input.train} --val {input.val} "
        "{params.pretrained} > {log} 2>&1"


# The held-out fold is the val data of its detector: its curves show how well the fold is
# predicted. The final checkpoint is exported (no choice is made on the held-out fold).
rule review_train:
    input:
        pipeline=f"{REVIEW}/fold{{fold}}/pipeline.yaml",
        train=other_folds,
        val=f"{REVIEW}/folds/fold{{fold}}.tfrecord",
    output:
        f"{REVIEW}/fold{{fold}}/train/train_summary.json",
    log:
        f"{LOGS}/review/fold{{fold}}_train.log",
    conda:
        "../envs/artdet.yaml"
    threads: all_cores()
    resources:
        gpu=1,
        gres=train_gres,
    params:
        model_dir=lambda wildcards, output: str(Path(output[0]).parent),
    shell:
        "python -m artdet train --pipeline {input.pipeline} --model-dir {params.model_dir} --log {log}"


rule review_export:
    input:
        pipeline=f"{REVIEW}/fold{{fold}}/pipeline.yaml",
        summary=f"{REVIEW}/fold{{fold}}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        directory(f"{REVIEW}/fold{{fold}}/saved_model"),
    log:
        f"{LOGS}/review/fold{{fold}}_export.log",
    conda:
        "../envs/artdet.yaml"
    params:
        model_dir=lambda wildcards, input: str(Path(input.summary).parent),
    shell:
        "python -m artdet export --pipeline {input.pipeline} --model-dir {params.model_dir} "
        "--label-map {input.label_map} --checkpoint final {output} > {log} 2>&1"


rule review_predict:
    input:
        model=f"{REVIEW}/fold{{fold}}/saved_model",
        folds=f"{REVIEW}/folds/folds.csv",
        validated=shard_outputs(f"{DATA}/shards/{{shard}}/validated.json"),
    output:
        f"{REVIEW}/fold{{fold}}/predictions.json",
    log:
        f"{LOGS}/review/fold{{fold}}_predict.log",
    conda:
        "../envs/artdet.yaml"
    threads: all_cores()
    params:
        dataset=lambda wildcards: str(DATASET),
    shell:
        "python -m artdet review-predict {input.model} --folds-csv {input.folds} --fold {wildcards.fold} "
        "--validated {input.validated} --dataset {params.dataset:q} --out {output} > {log} 2>&1"


rule review:
    input:
        predictions=expand(f"{REVIEW}/fold{{fold}}/predictions.json", fold=REVIEW_FOLDS),
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        issues=f"{REVIEW}/issues.csv",
        images=f"{REVIEW}/images.txt",
        summary=f"{REVIEW}/summary.json",
        html=report(
            f"{REVIEW}/review.html",
            caption="../report/review.rst",
            category="Label review",
        ),
    log:
        f"{LOGS}/review/review.log",
    conda:
        "../envs/artdet.yaml"
    params:
        out_dir=lambda wildcards, output: str(Path(output.issues).parent),
        dataset=lambda wildcards: str(DATASET),
        options=(
            f"--scorer {REVIEW_CFG['scorer']} --high-score {REVIEW_CFG['high_score']} "
            f"--low-score {REVIEW_CFG['low_score']} --thumbnails {REVIEW_CFG['thumbnails']}"
        ),
    shell:
        "python -m artdet review {input.predictions} --label-map {input.label_map} "
        "--dataset {params.dataset:q} --out-dir {params.out_dir} {params.options} > {log} 2>&1"
