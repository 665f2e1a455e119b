# Evaluate every exported model on the test split, compare them; plot the training curves.


rule evaluate:
    input:
        model=model_file,
        test=shard_outputs(f"{DATA}/records/test-{{shard}}.tfrecord"),
        reference=lambda wildcards: (
            []
            if wildcards.fmt == "saved_model"
            else f"results/{wildcards.model}/evaluation/saved_model/detections.json"
        ),
        manifests=originals_manifests,
    output:
        metrics="results/{model}/evaluation/{fmt}/metrics.json",
        detections="results/{model}/evaluation/{fmt}/detections.json",
        per_class="results/{model}/evaluation/{fmt}/per_class.csv",
        table=report(
            "results/{model}/evaluation/{fmt}/metrics.html",
            caption="../report/metrics_table.rst",
            category="Evaluation",
            subcategory="{model} {fmt}",
        ),
        confusion_csv="results/{model}/evaluation/{fmt}/confusion_matrix.csv",
        pr_plot=report(
            "results/{model}/evaluation/{fmt}/precision_recall.png",
            caption="../report/precision_recall.rst",
            category="Evaluation",
            subcategory="{model} {fmt}",
        ),
        confusion=report(
            "results/{model}/evaluation/{fmt}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Evaluation",
            subcategory="{model} {fmt}",
        ),
        worst=report(
            "results/{model}/evaluation/{fmt}/worst_images.jpg",
            caption="../report/worst_images.rst",
            category="Evaluation",
            subcategory="{model} {fmt}",
        ),
        samples=report(
            "results/{model}/evaluation/{fmt}/sample_detections.jpg",
            caption="../report/sample_detections.rst",
            category="Detections",
            subcategory="{model} {fmt}",
        ),
    log:
        f"{LOGS}/{{model}}/evaluate_{{fmt}}.log",
    wildcard_constraints:
        fmt="saved_model|tflite_float32|tflite_float16|tflite_int8",
    conda:
        "../envs/artdet.yaml"
    # All cores: the job runs alone, so that its latency figures are not shared with another job.
    threads: all_cores()
    params:
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        iou=config["evaluation"]["iou_threshold"],
        score=lambda wildcards: (
            ""
            if config["evaluation"]["score_threshold"] is None
            else f"--score {config['evaluation']['score_threshold']}"
        ),
        reference=lambda wildcards, input: (
            f"--reference {input.reference} "
            f"--tolerance {config['evaluation']['export_tolerance']} "
            f"--found-min-score {config['evaluation']['found_min_score']}"
            if input.reference
            else ""
        ),
        originals=originals_option,
    shell:
        "python -m artdet evaluate {input.model} {input.test} --out-dir {params.out_dir} "
        "--iou {params.iou} {params.score} {params.reference} {params.originals} > {log} 2>&1"


# Every evaluated model and format in one table and plot.
rule compare:
    input:
        all_metrics(),
    output:
        csv="results/comparison.csv",
        json="results/comparison.json",
        md="results/comparison.md",
        png=report(
            "results/comparison.png",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        html=report(
            "results/comparison.html",
            caption="../report/comparison_table.rst",
            category="Comparison",
        ),
    log:
        f"{LOGS}/compare.log",
    conda:
        "../envs/artdet.yaml"
    params:
        prefix=lambda wildcards, output: str(Path(output.csv).with_suffix("")),
    shell:
        "python -m artdet compare {params.prefix} {input} > {log} 2>&1"


rule plot_training:
    input:
        "results/{model}/train/train_summary.json",
    output:
        report(
            "results/{model}/training_loss.png",
            caption="../report/training_loss.rst",
            category="Training",
            subcategory="{model}",
        ),
    log:
        f"{LOGS}/{{model}}/plot_training.log",
    conda:
        "../envs/artdet.yaml"
    params:
        event_dir=lambda wildcards, input: str(Path(input[0]).parent),
    shell:
        "python -m artdet plot-training {params.event_dir} {output} > {log} 2>&1"
