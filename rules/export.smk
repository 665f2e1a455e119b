# Export the trained checkpoint as a SavedModel with its label map, then to TFLite.


rule export:
    input:
        pipeline="results/{model}/pipeline.yaml",
        summary="results/{model}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
        classifier=two_stage_classifier,
    output:
        directory("results/{model}/saved_model"),
    log:
        f"{LOGS}/{{model}}/export.log",
    conda:
        "../envs/artdet.yaml"
    params:
        model_dir=lambda wildcards, input: str(Path(input.summary).parent),
        checkpoint=export_checkpoint,
        classifier=lambda wildcards, input: (
            f"--box-classifier {input.classifier}" if input.classifier else ""
        ),
    shell:
        "python -m artdet export --pipeline {input.pipeline} --model-dir {params.model_dir} "
        "--label-map {input.label_map} --checkpoint {params.checkpoint} {params.classifier} {output} > {log} 2>&1"


# float32, float16 or int8 (calibrated on training images), each in its own folder with the
# label map, from the checkpoint through Model Garden's mobile export (fixed-size input,
# TFLite's detection post-processing op). Only one-stage presets: Model Garden has no TFLite
# path for Faster R-CNN.
rule export_tflite:
    input:
        pipeline="results/{model}/pipeline.yaml",
        summary="results/{model}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
        train=shard_outputs(f"{DATA}/records/train-{{shard}}.tfrecord"),
        classifier=two_stage_classifier,
    output:
        "results/{model}/tflite_{precision}/model.tflite",
    log:
        f"{LOGS}/{{model}}/export_tflite_{{precision}}.log",
    wildcard_constraints:
        precision="float32|float16|int8",
    conda:
        "../envs/artdet.yaml"
    params:
        model_dir=lambda wildcards, input: str(Path(input.summary).parent),
        calibration=lambda wildcards, input: (
            f"--calibration-records {' '.join(input.train)}"
            if wildcards.precision == "int8"
            else ""
        ),
        checkpoint=export_checkpoint,
        classifier=lambda wildcards, input: (
            f"--box-classifier {input.classifier}" if input.classifier else ""
        ),
    shell:
        "python -m artdet export-tflite {output} --pipeline {input.pipeline} --model-dir {params.model_dir} "
        "--label-map {input.label_map} --precision {wildcards.precision} {params.calibration} "
        "--checkpoint {params.checkpoint} {params.classifier} > {log} 2>&1"
