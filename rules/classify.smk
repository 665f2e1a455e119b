# The artwork classifier (SIFT + visual words + colour, linear SVM), a branch beside the detector:
# features per shard -> report, vocabulary -> train -> export -> evaluate, into results/classify/.
# Built by `snakemake classify --config classify_dataset=PATH` (or by `rule all` when it is set).

CLASSIFY = "results/classify"
CLASSIFY_SHARDS = config["classify"]["shards"]
CLASSIFY_SHARD_NAMES = [shard_name(i, CLASSIFY_SHARDS) for i in range(CLASSIFY_SHARDS)]


def _classify_index():
    """The classify dataset's image and XML files by shard (computed once, only when a rule needs them)."""
    if "index" not in _classify_index.__dict__:
        folder = config.get("classify_dataset")
        if not folder or not Path(folder).is_dir():
            raise WorkflowError(
                f"classify_dataset folder {folder} does not exist: set 'classify_dataset:' in config.yaml, pass "
                "--config classify_dataset=PATH, or generate the demo with `artdet demo-data --classify PATH`"
            )
        wanted = IMAGE_SUFFIXES | {".xml"}
        index = {name: [] for name in CLASSIFY_SHARD_NAMES}
        for path in sorted(Path(folder).rglob("*")):
            if (
                path.is_file()
                and path.suffix.lower() in wanted
                and not path.name.startswith(".")
            ):
                index[
                    CLASSIFY_SHARD_NAMES[shard_of(path.stem, CLASSIFY_SHARDS)]
                ].append(str(path))
        _classify_index.index = index
    return _classify_index.index


def classify_shard_files(wildcards):
    return _classify_index()[wildcards.shard]


def classify_outputs(pattern):
    return expand(pattern, shard=CLASSIFY_SHARD_NAMES)


def classify_targets():
    """What `snakemake classify` builds."""
    return [
        f"{CLASSIFY}/model.joblib",
        f"{CLASSIFY}/evaluation/metrics.json",
        f"{CLASSIFY}/data_report.json",
    ]


CLASSIFY_FEATURES = classify_outputs(f"{CLASSIFY}/features/{{shard}}.npz")
CLASSIFY_REPORTS = classify_outputs(f"{CLASSIFY}/features/{{shard}}.json")
CFG = config["classify"]


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
            f"--max-features {CFG['max_features']}"
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
            f"--max-features {CFG['max_features']} --top-k {CFG['top_k']} "
            f"--unknown-threshold {CFG['unknown_threshold']} "
            f"--verify {str(CFG['verify']).lower()} --min-inliers {CFG['min_inliers']} "
            f"--references {CFG['references']}"
        ),
    shell:
        "python -m artdet classify-export {output} --trained {input.trained} "
        "--vocabulary {input.vocabulary} --features {input.features} {params.options} > {log} 2>&1"


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
