# Export the trained checkpoint as a SavedModel with its label map and its score threshold
# (fitted on the val split), then to TFLite.


rule export:
    input:
        pipeline="results/{model}/pipeline.yaml",
        summary="results/{model}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
        classifier=two_stage_classifier,
        val=shard_outputs(f"{DATA}/records/val-{{shard}}.tfrecord"),
        manifests=originals_manifests,
    output:
        model=directory("results/{model}/saved_model"),
        point="results/{model}/operating_point.json",
        val="results/{model}/val_evaluation/metrics.json",
    log:
        f"{LOGS}/{{model}}/export.log",
    conda:
        "../envs/artdet.yaml"
    threads: all_cores()
    params:
        model_dir=lambda wildcards, input: str(Path(input.summary).parent),
        checkpoint=export_checkpoint,
        classifier=lambda wildcards, input: (
            f"--box-classifier {input.classifier}" if input.classifier else ""
        ),
        val_dir=lambda wildcards, output: str(Path(output.val).parent),
        iou=config["evaluation"]["iou_threshold"],
        originals=originals_option,
    # Then the exported model on the val split, by the same evaluation as the test split's: the
    # score threshold it is used at (stored in the model, best F1 of its boxes), and what
    # classifier: auto chooses a form on.
    shell:
        "python -m artdet export --pipeline {input.pipeline} --model-dir {params.model_dir} "
        "--label-map {input.label_map} --checkpoint {params.checkpoint} {params.classifier} {output.model} "
        "--val-records {input.val} --val-dir {params.val_dir} --operating-point {output.point} "
        "--iou {params.iou} {params.originals} > {log} 2>&1"


# float32, float16 or int8 (calibrated on training images), each in its own folder with the
# label map and the SavedModel's score threshold, from the checkpoint through Model Garden's mobile export (fixed-size input,
# TFLite's detection post-processing op). Only one-stage presets: Model Garden has no TFLite
# path for Faster R-CNN.
rule export_tflite:
    input:
        pipeline="results/{model}/pipeline.yaml",
        summary="results/{model}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
        train=shard_outputs(f"{DATA}/records/train-{{shard}}.tfrecord"),
        classifier=two_stage_classifier,
        point="results/{model}/operating_point.json",
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
        "--checkpoint {params.checkpoint} {params.classifier} --operating-point {input.point} > {log} 2>&1"
