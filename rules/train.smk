# Render the Model Garden experiment config, then train.


# A pretrained checkpoint from the registry (src/artdet/train/checkpoints.py), downloaded once into
# the cache and verified against checkpoints.lock.json; only when a model asks for one.
rule fetch_checkpoint:
    output:
        "results/checkpoints/{name}/checkpoint.json",
    log:
        f"{LOGS}/checkpoints/{{name}}.log",
    conda:
        "../envs/artdet.yaml"
    params:
        cache=config["checkpoint_cache"],
    shell:
        "python -m artdet fetch-checkpoint {wildcards.name} --cache {params.cache:q} "
        "--lock checkpoints.lock.json --out {output} > {log} 2>&1"


rule pipeline_config:
    input:
        pretrained=pretrained_checkpoint,
        label_map=f"{DATA}/label_map.pbtxt",
        train=shard_outputs(f"{DATA}/records/train-{{shard}}.tfrecord"),
        val=shard_outputs(f"{DATA}/records/val-{{shard}}.tfrecord"),
        stats=box_stats,
        classifier=classifier_summary,
    output:
        "results/{model}/pipeline.yaml",
    log:
        f"{LOGS}/{{model}}/pipeline_config.log",
    conda:
        "../envs/artdet.yaml"
    params:
        model=model_config,
        pretrained=lambda wildcards, input: (
            f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
        stats=lambda wildcards, input: f"--stats {input.stats}" if input.stats else "",
        two_stage=lambda wildcards, input: (
            "--class-agnostic" if is_two_stage(wildcards.model) else ""
        )
        + (f" --classifier-summary {input.classifier}" if input.classifier else ""),
    shell:
        "python -m artdet pipeline-config {output} --model-json {params.model:q} "
        "--label-map {input.label_map} --train {input.train} --val {input.val} "
        "{params.pretrained} {params.stats} {params.two_stage} > {log} 2>&1"


# Progress lines go to the console as well as the log (`--log`), so a run of hours is
# not silent. Training validates on the val records (never the test records, kept for `evaluate`).
# It waits for the validation report, which fails a strict run with data warnings
# (ancient: a report rewritten with the same records does not retrain).
# Checkpoints and TensorBoard events live in results/{model}/train/, which is not
# a declared output: Snakemake keeps it after a failure, so a rerun resumes.
rule train:
    input:
        pipeline="results/{model}/pipeline.yaml",
        train=shard_outputs(f"{DATA}/records/train-{{shard}}.tfrecord"),
        val=shard_outputs(f"{DATA}/records/val-{{shard}}.tfrecord"),
        report=ancient(f"{DATA}/validation_report.json"),
    output:
        "results/{model}/train/train_summary.json",
    log:
        f"{LOGS}/{{model}}/train.log",
    conda:
        "../envs/artdet.yaml"
    threads: all_cores()
    # gpu=1: one training job at a time holds the local GPU; gres: the GPU on a SLURM cluster.
    resources:
        gpu=1,
        gres=train_gres,
    params:
        model_dir=lambda wildcards, output: str(Path(output[0]).parent),
    shell:
        "python -m artdet train --pipeline {input.pipeline} --model-dir {params.model_dir} --log {log}"
