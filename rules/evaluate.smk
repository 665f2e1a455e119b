# Evaluate the exported model on the test split; plot the training curves.


rule evaluate:
    input:
        model="results/{model}/saved_model",
        test=shard_outputs(f"{DATA}/records/test-{{shard}}.tfrecord"),
    output:
        metrics="results/{model}/metrics.json",
        pr_plot=report(
            "results/{model}/precision_recall.png",
            caption="../report/precision_recall.rst",
            category="Evaluation",
            subcategory="{model}",
        ),
    log:
        f"{LOGS}/{{model}}/evaluate.log",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet evaluate {input.model} {input.test} --metrics {output.metrics} "
        "--pr-plot {output.pr_plot} > {log} 2>&1"


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
        event_dir=lambda wildcards, input: str(Path(input[0]).parent / "train"),
    shell:
        "python -m artdet plot-training {params.event_dir} {output} > {log} 2>&1"
