# Data stages: resize -> split -> CSV -> label map -> TFRecord.


rule resize:
    input:
        dataset_files(),
    output:
        images=directory(f"{DATA}/images"),
        manifest=f"{DATA}/manifest.json",
    log:
        f"{LOGS}/data/resize.log",
    conda:
        "../envs/artdet.yaml"
    params:
        dataset=lambda wildcards: str(DATASET),
        max_side=config["resize"]["max_side"],
        max_bytes=config["resize"]["max_bytes"],
    shell:
        "python -m artdet resize {params.dataset:q} {output.images} {output.manifest} "
        "--max-side {params.max_side} --max-bytes {params.max_bytes} > {log} 2>&1"


rule split:
    input:
        f"{DATA}/manifest.json",
    output:
        f"{DATA}/split.csv",
    log:
        f"{LOGS}/data/split.log",
    conda:
        "../envs/artdet.yaml"
    params:
        test_fraction=config["split"]["test_fraction"],
        seed=config["split"]["seed"],
    shell:
        "python -m artdet split {input} {output} --test-fraction {params.test_fraction} "
        "--seed {params.seed} > {log} 2>&1"


rule labels_csv:
    input:
        manifest=f"{DATA}/manifest.json",
        split=f"{DATA}/split.csv",
    output:
        f"{DATA}/{{split}}_labels.csv",
    log:
        f"{LOGS}/data/{{split}}_labels.log",
    wildcard_constraints:
        split="train|test",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet csv {input.manifest} {input.split} {wildcards.split} {output} > {log} 2>&1"


rule label_map:
    input:
        f"{DATA}/manifest.json",
    output:
        f"{DATA}/label_map.pbtxt",
    log:
        f"{LOGS}/data/label_map.log",
    conda:
        "../envs/artdet.yaml"
    params:
        classes=config.get("classes") or [],
        flag="--classes" if config.get("classes") else "",
    shell:
        "python -m artdet label-map {input} {output} {params.flag} {params.classes:q} > {log} 2>&1"


rule tfrecord:
    input:
        labels=f"{DATA}/{{split}}_labels.csv",
        split=f"{DATA}/split.csv",
        images=f"{DATA}/images",
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        f"{DATA}/{{split}}.record",
    log:
        f"{LOGS}/data/{{split}}_record.log",
    wildcard_constraints:
        split="train|test",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet tfrecord {input.labels} {input.split} {wildcards.split} {input.images} "
        "{input.label_map} {output} > {log} 2>&1"
