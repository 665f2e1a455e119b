# The artwork classifier (SIFT + visual words + colour, linear SVM), a branch beside the detector:
# features per shard -> report, vocabulary -> train -> export -> evaluate, into results/classify/.
# Built by `snakemake classify --config classify_dataset=PATH` (or by `rule all` when it is set).


rule classify_features:
    input:
        classify_shard_files,
    output:
        features=f"{CLASSIFY}/features/{{shard}}.npz",
        report=f"{CLASSIFY}/features/{{shard}}.json",
    log:
        f"{LOGS}/classify/features_{{shard}}.log",
    conda:
        "../envs/artdet.yaml"
    params:
        dataset=lambda wildcards: config["classify_dataset"],
        index=lambda wildcards: CLASSIFY_SHARD_NAMES.index(wildcards.shard),
        options=(
            f"--shards {CLASSIFY_SHARDS} --test-fraction {CFG['test_fraction']} --seed {CFG['seed']} "
            f"--crop-padding {CFG['crop_padding']} --min-side {CFG['min_side']} "
            f"--max-side {CFG['max_side']} --upscale-to {CFG['upscale_to']} "
            f"--max-features {CFG['max_features']} "
            f"--contrast-threshold {CFG['contrast_threshold']}"
        ),
    shell:
        "python -m artdet classify-features {params.dataset:q} {output.features} {output.report} "
        "--shard {params.index} {params.options} > {log} 2>&1"


rule classify_report:
    input:
        CLASSIFY_REPORTS,
    output:
        json=f"{CLASSIFY}/data_report.json",
        md=f"{CLASSIFY}/data_report.md",
    log:
        f"{LOGS}/classify/report.log",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet classify-report {output.json} {input} > {log} 2>&1"


rule classify_vocabulary:
    input:
        CLASSIFY_FEATURES,
    output:
        f"{CLASSIFY}/vocabulary.npy",
    log:
        f"{LOGS}/classify/vocabulary.log",
    conda:
        "../envs/artdet.yaml"
    params:
        size=CFG["vocabulary_size"],
        seed=CFG["seed"],
    shell:
        "python -m artdet classify-vocabulary {output} {input} --size {params.size} "
        "--seed {params.seed} > {log} 2>&1"


rule classify_train:
    input:
        vocabulary=f"{CLASSIFY}/vocabulary.npy",
        features=CLASSIFY_FEATURES,
    output:
        f"{CLASSIFY}/train/svm.joblib",
    log:
        f"{LOGS}/classify/train.log",
    conda:
        "../envs/artdet.yaml"
    params:
        options=(
            f"--svm-c {CFG['svm_c']} --class-weight {CFG['class_weight']} "
            f"--colour-weight {CFG['colour_weight']} --seed {CFG['seed']}"
        ),
    shell:
        "python -m artdet classify-train {output} --vocabulary {input.vocabulary} "
        "--features {input.features} {params.options} > {log} 2>&1"


rule classify_export:
    input:
        trained=f"{CLASSIFY}/train/svm.joblib",
        vocabulary=f"{CLASSIFY}/vocabulary.npy",
        features=CLASSIFY_FEATURES,
    output:
        f"{CLASSIFY}/model.joblib",
    log:
        f"{LOGS}/classify/export.log",
    conda:
        "../envs/artdet.yaml"
    params:
        options=(
            f"--max-side {CFG['max_side']} --upscale-to {CFG['upscale_to']} "
            f"--max-features {CFG['max_features']} --contrast-threshold {CFG['contrast_threshold']} "
            f"--top-k {CFG['top_k']} "
            f"--unknown-threshold {CFG['unknown_threshold']} "
            f"--verify {str(CFG['verify']).lower()} --min-inliers {CFG['min_inliers']} "
            f"--references {CFG['references']}"
        ),
        # min_inliers: auto is fitted on held-out training pictures, and on half of the unseen ones.
        unseen=f"--unseen {CFG['unseen']}" if CFG.get("unseen") else "",
    shell:
        "python -m artdet classify-export {output} --trained {input.trained} "
        "--vocabulary {input.vocabulary} --features {input.features} {params.options} {params.unseen} > {log} 2>&1"


rule classify_evaluate:
    input:
        model=f"{CLASSIFY}/model.joblib",
        features=CLASSIFY_FEATURES,
        reports=CLASSIFY_REPORTS,
    output:
        metrics=f"{CLASSIFY}/evaluation/metrics.json",
        predictions=f"{CLASSIFY}/evaluation/predictions.csv",
        confusion=report(
            f"{CLASSIFY}/evaluation/confusion_matrix.png",
            caption="../report/classify_confusion.rst",
            category="Classifier",
        ),
        worst=report(
            f"{CLASSIFY}/evaluation/worst_examples.jpg",
            caption="../report/classify_worst.rst",
            category="Classifier",
        ),
    log:
        f"{LOGS}/classify/evaluate.log",
    conda:
        "../envs/artdet.yaml"
    # All cores: the job runs alone, so that its latency figures are not shared with another job.
    threads: all_cores()
    params:
        dataset=lambda wildcards: config["classify_dataset"],
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        unseen=f"--unseen {CFG['unseen']}" if CFG.get("unseen") else "",
    shell:
        "python -m artdet classify-evaluate {input.model} {params.out_dir} --dataset {params.dataset:q} "
        "--features {input.features} --reports {input.reports} {params.unseen} > {log} 2>&1"
