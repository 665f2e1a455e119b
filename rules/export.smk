# Export the trained checkpoint as a SavedModel with its label map.


rule export:
    input:
        pipeline="results/{model}/pipeline.yaml",
        summary="results/{model}/train/train_summary.json",
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        directory("results/{model}/saved_model"),
    log:
        f"{LOGS}/{{model}}/export.log",
    conda:
        "../envs/artdet.yaml"
    params:
        model_dir=lambda wildcards, input: str(Path(input.summary).parent),
    shell:
        "python -m artdet export --pipeline {input.pipeline} --model-dir {params.model_dir} "
        "--label-map {input.label_map} {output} > {log} 2>&1"
