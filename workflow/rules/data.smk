# The data stage: dataset archive -> validated table -> train/val split -> TFRecord shards,
# COCO ground truth, statistics and a visual check of the records.

rule download:
    input:
        dataset_source(),
    output:
        f"resources/datasets/{DATASET}.zip",
    log:
        f"logs/{DATASET}/download.log",
    params:
        sha256=sha256_option,
    localrule: True
    conda:
        DATA_ENV
    shell:
        "efficientdet download --source {input:q} {params.sha256} --output {output:q} > {log:q} 2>&1"


rule unpack:
    input:
        rules.download.output[0],
    output:
        directory(f"{DATA}/voc"),
    log:
        f"logs/{DATASET}/unpack.log",
    params:
        max_gb=DATASET_CONFIG["max_unpacked_gb"],
    resources:
        mem_mb=1000,
        runtime=60,
    conda:
        DATA_ENV
    shell:
        "efficientdet unpack --archive {input:q} --output {output:q} --max_gb {params.max_gb}"
        " > {log:q} 2>&1"


rule index:
    input:
        rules.unpack.output[0],
    output:
        annotations=f"{DATA}/annotations.csv",
        label_map=f"{DATA}/label_map.yaml",
        report=f"{DATA}/validation_report.txt",
    log:
        f"logs/{DATASET}/index.log",
    params:
        label_map=json.dumps(DATASET_CONFIG["label_map"]),
    threads: 4
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        DATA_ENV
    shell:
        "efficientdet index --voc {input:q} --label_map {params.label_map:q} --threads {threads}"
        " --annotations {output.annotations:q} --label_map_output {output.label_map:q}"
        " --report {output.report:q} > {log:q} 2>&1"


checkpoint split:
    input:
        rules.index.output.annotations,
    output:
        train=f"{DATA}/splits/train.txt",
        val=f"{DATA}/splits/val.txt",
    log:
        f"logs/{DATASET}/split.log",
    params:
        train_fraction=DATASET_CONFIG["train_fraction"],
        seed=DATASET_CONFIG["seed"],
    conda:
        DATA_ENV
    shell:
        "efficientdet split --annotations {input:q} --train_fraction {params.train_fraction}"
        " --seed {params.seed} --train_output {output.train:q} --val_output {output.val:q}"
        " > {log:q} 2>&1"


rule shard:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        split=f"{DATA}/splits/{{split}}.txt",
        voc=rules.unpack.output[0],
    output:
        f"{DATA}/tfrecords/{{split}}-{{shard}}-of-{{num_shards}}.tfrecord",
    log:
        f"logs/{DATASET}/shard/{{split}}-{{shard}}-of-{{num_shards}}.log",
    wildcard_constraints:
        shard=r"\d{5}",
        num_shards=r"\d{5}",
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        DATA_ENV
    shell:
        "efficientdet shard --annotations {input.annotations:q} --label_map {input.label_map:q}"
        " --split {input.split:q} --voc {input.voc:q} --shard_index {wildcards.shard}"
        " --num_shards {wildcards.num_shards} --output {output:q} > {log:q} 2>&1"


rule ground_truth:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        split=f"{DATA}/splits/val.txt",
    output:
        f"{DATA}/val_coco.json",
    log:
        f"logs/{DATASET}/ground_truth.log",
    conda:
        DATA_ENV
    shell:
        "efficientdet ground_truth --annotations {input.annotations:q}"
        " --label_map {input.label_map:q} --split {input.split:q} --output {output:q} > {log:q} 2>&1"


rule dataset_stats:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        train=f"{DATA}/splits/train.txt",
        val=f"{DATA}/splits/val.txt",
    output:
        expand(
            f"{DATA}/stats/{{name}}",
            name=(
                "class_counts.csv", "objects_per_image.csv", "box_sizes.csv", "summary.yaml",
                "class_counts.png", "objects_per_image.png", "box_sizes.png",
            ),
        ),
    log:
        f"logs/{DATASET}/dataset_stats.log",
    params:
        # From the output, which is a local copy's path under remote storage.
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        DATA_ENV
    shell:
        "efficientdet dataset_stats --annotations {input.annotations:q}"
        " --label_map {input.label_map:q} --train {input.train:q} --val {input.val:q}"
        " --output_dir {params.folder:q} > {log:q} 2>&1"


rule inspect:
    input:
        train=lambda wildcards: split_shards("train"),
        val=lambda wildcards: split_shards("val"),
    output:
        train=directory(f"{DATA}/inspect/train"),
        val=directory(f"{DATA}/inspect/val"),
    log:
        f"logs/{DATASET}/inspect.log",
    params:
        images=DATASET_CONFIG["inspect_images"],
    conda:
        DATA_ENV
    shell:
        "(efficientdet inspect --tfrecords {input.train:q} --num_images {params.images}"
        " --output {output.train:q}"
        " && efficientdet inspect --tfrecords {input.val:q} --num_images {params.images}"
        " --output {output.val:q}) > {log:q} 2>&1"
