# Data stages, per shard: validate -> resize -> split -> CSV -> TFRecord.
# Each image is on one side: train, val (scored during training) or test (the final evaluation).
# Then, over all shards: the validation report, merged tables, statistics.
# A shard is every file whose stem hashes to it, so adding an image reruns one shard.

SHARD_DIR = f"{DATA}/shards/{{shard}}"


wildcard_constraints:
    shard=r"\d{5}-of-\d{5}",


rule validate:
    input:
        shard_files,
    output:
        f"{SHARD_DIR}/validated.json",
    log:
        f"{LOGS}/data/{{shard}}/validate.log",
    conda:
        "../envs/artdet.yaml"
    params:
        dataset=lambda wildcards: str(DATASET),
        index=lambda wildcards: int(wildcards.shard[:5]),
        shards=SHARDS,
        classes=lambda wildcards: label_map_classes(),
        unknown=config["unknown_classes"],
        negatives=config["negatives"],
        exif=config["exif_boxes"],
        prelabels=config["prelabels"],
        strict="--strict" if config["strict"] else "",
    shell:
        "python -m artdet validate {params.dataset:q} --shard {params.index} --shards {params.shards} "
        "--out {output} --classes {params.classes:q} --unknown-classes {params.unknown} "
        "--negatives {params.negatives} --exif-boxes {params.exif} --prelabels {params.prelabels} "
        "{params.strict} > {log} 2>&1"


rule resize:
    input:
        f"{SHARD_DIR}/validated.json",
    output:
        images=directory(f"{SHARD_DIR}/images"),
        manifest=f"{SHARD_DIR}/manifest.json",
    log:
        f"{LOGS}/data/{{shard}}/resize.log",
    conda:
        "../envs/artdet.yaml"
    params:
        dataset=lambda wildcards: str(DATASET),
        max_side=config["resize"]["max_side"],
        max_bytes=config["resize"]["max_bytes"],
    shell:
        "python -m artdet resize {params.dataset:q} {input} {output.images} {output.manifest} "
        "--max-side {params.max_side} --max-bytes {params.max_bytes} > {log} 2>&1"


rule split:
    input:
        f"{SHARD_DIR}/manifest.json",
    output:
        f"{SHARD_DIR}/split.csv",
    log:
        f"{LOGS}/data/{{shard}}/split.log",
    conda:
        "../envs/artdet.yaml"
    params:
        test_fraction=config["split"]["test_fraction"],
        val_fraction=config["split"]["val_fraction"],
        seed=config["split"]["seed"],
        pins=shard_pins,
    shell:
        "python -m artdet split {input} {output} --test-fraction {params.test_fraction} "
        "--val-fraction {params.val_fraction} --seed {params.seed} --pins-json {params.pins:q} > {log} 2>&1"


rule labels_csv:
    input:
        manifest=f"{SHARD_DIR}/manifest.json",
        split=f"{SHARD_DIR}/split.csv",
    output:
        train=f"{SHARD_DIR}/train_labels.csv",
        val=f"{SHARD_DIR}/val_labels.csv",
        test=f"{SHARD_DIR}/test_labels.csv",
    log:
        f"{LOGS}/data/{{shard}}/labels_csv.log",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet csv {input.manifest} {input.split} --train {output.train} "
        "--val {output.val} --test {output.test} > {log} 2>&1"


rule label_map:
    output:
        f"{DATA}/label_map.pbtxt",
    log:
        f"{LOGS}/data/label_map.log",
    conda:
        "../envs/artdet.yaml"
    params:
        classes=lambda wildcards: label_map_classes(),
    shell:
        "python -m artdet label-map {output} --classes {params.classes:q} > {log} 2>&1"


rule tfrecord:
    input:
        manifest=f"{SHARD_DIR}/manifest.json",
        split=f"{SHARD_DIR}/split.csv",
        images=f"{SHARD_DIR}/images",
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        train=f"{DATA}/records/train-{{shard}}.tfrecord",
        val=f"{DATA}/records/val-{{shard}}.tfrecord",
        test=f"{DATA}/records/test-{{shard}}.tfrecord",
    log:
        f"{LOGS}/data/{{shard}}/tfrecord.log",
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet tfrecord {input.manifest} {input.split} {input.images} {input.label_map} "
        "--train {output.train} --val {output.val} --test {output.test} > {log} 2>&1"


rule data_report:
    input:
        validated=shard_outputs(f"{SHARD_DIR}/validated.json"),
        manifests=shard_outputs(f"{SHARD_DIR}/manifest.json"),
        splits=shard_outputs(f"{SHARD_DIR}/split.csv"),
    output:
        json=f"{DATA}/validation_report.json",
        md=f"{DATA}/validation_report.md",
        html=report(
            f"{DATA}/validation_report.html",
            caption="../report/validation_report.rst",
            category="Data",
        ),
    log:
        f"{LOGS}/data/data_report.log",
    conda:
        "../envs/artdet.yaml"
    params:
        shards=shard_outputs(SHARD_DIR),
        distance=config["split"]["near_duplicate_distance"],
        val_fraction=config["split"]["val_fraction"],
        pins=f"--pins {config['split']['pins']}" if config["split"].get("pins") else "",
        strict="--strict" if config["strict"] else "",
    shell:
        "python -m artdet data-report {params.shards} --json {output.json} --md {output.md} --html {output.html} "
        "--near-duplicate-distance {params.distance} --val-fraction {params.val_fraction} "
        "{params.pins} {params.strict} > {log} 2>&1"


rule merge_csv:
    input:
        split=shard_outputs(f"{SHARD_DIR}/split.csv"),
        train=shard_outputs(f"{SHARD_DIR}/train_labels.csv"),
        val=shard_outputs(f"{SHARD_DIR}/val_labels.csv"),
        test=shard_outputs(f"{SHARD_DIR}/test_labels.csv"),
    output:
        split=f"{DATA}/split.csv",
        train=f"{DATA}/train_labels.csv",
        val=f"{DATA}/val_labels.csv",
        test=f"{DATA}/test_labels.csv",
    log:
        f"{LOGS}/data/merge_csv.log",
    conda:
        "../envs/artdet.yaml"
    shell:
        "(python -m artdet merge-csv {output.split} {input.split} && "
        "python -m artdet merge-csv {output.train} {input.train} && "
        "python -m artdet merge-csv {output.val} {input.val} && "
        "python -m artdet merge-csv {output.test} {input.test}) > {log} 2>&1"


rule merge_records:
    input:
        lambda wildcards: shard_outputs(
            f"{DATA}/records/{wildcards.split}-{{shard}}.tfrecord"
        ),
    output:
        f"{DATA}/{{split}}.record",
    log:
        f"{LOGS}/data/{{split}}_merge_records.log",
    wildcard_constraints:
        split="|".join(SIDES),
    conda:
        "../envs/artdet.yaml"
    shell:
        "python -m artdet merge-records {output} {input} > {log} 2>&1"


rule stats:
    input:
        manifests=shard_outputs(f"{SHARD_DIR}/manifest.json"),
        splits=shard_outputs(f"{SHARD_DIR}/split.csv"),
        images=shard_outputs(f"{SHARD_DIR}/images"),
        label_map=f"{DATA}/label_map.pbtxt",
    output:
        json=f"{DATA}/stats/stats.json",
        classes=report(
            f"{DATA}/stats/class_counts.png",
            caption="../report/class_counts.rst",
            category="Data",
        ),
        boxes=report(
            f"{DATA}/stats/box_distributions.png",
            caption="../report/box_distributions.rst",
            category="Data",
        ),
        sheet=report(
            f"{DATA}/stats/contact_sheet.jpg",
            caption="../report/contact_sheet.rst",
            category="Data",
        ),
    log:
        f"{LOGS}/data/stats.log",
    conda:
        "../envs/artdet.yaml"
    params:
        shards=shard_outputs(SHARD_DIR),
        out_dir=lambda wildcards, output: str(Path(output.json).parent),
    shell:
        "python -m artdet stats {params.shards} --label-map {input.label_map} "
        "--out-dir {params.out_dir} > {log} 2>&1"
