# The data stage: dataset archive -> validated table -> train/val split -> TFRecord shards,
# COCO ground truth, statistics and a visual check of the records.


rule download:
    input:
        dataset_source,
    output:
        f"resources/datasets/{DATASET}/{{archive}}",
    log:
        f"logs/{DATASET}/download/{{archive}}.log",
    wildcard_constraints:
        archive="|".join(map(re.escape, DOWNLOADS)),
    localrule: True
    conda:
        DATA_ENV
    params:
        sha256=sha256_option,
    shell:
        "efficientdet download --source {input:q} {params.sha256} --output {output:q} > {log:q} 2>&1"


rule unpack:
    input:
        ARCHIVE_FILES,
    output:
        directory(DATA.voc),
    log:
        f"logs/{DATASET}/unpack.log",
    conda:
        DATA_ENV
    threads: 4
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        max_gb=DATASET_CONFIG["max_unpacked_gb"],
    shell:
        "efficientdet unpack --archive {input:q} --output {output:q} --max_gb {params.max_gb}"
        " --threads {threads} > {log:q} 2>&1"


rule index:
    input:
        rules.unpack.output[0],
    output:
        annotations=DATA.annotations,
        label_map=DATA.label_map,
        report=report(
            DATA.validation_report,
            caption="../report/validation_report.rst",
            category="Data",
            subcategory="Validation",
        ),
    log:
        f"logs/{DATASET}/index.log",
    conda:
        DATA_ENV
    threads: 4
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        label_map=json.dumps(dataset_label_map()),
        split_lists=split_lists_option,
    shell:
        "efficientdet index --voc {input:q} --label_map {params.label_map:q} --threads {threads}"
        " --annotations {output.annotations:q} --label_map_output {output.label_map:q}"
        " --report {output.report:q} {params.split_lists} > {log:q} 2>&1"


checkpoint split:
    input:
        rules.index.output.annotations,
    output:
        train=DATA.split_list("train"),
        val=DATA.split_list("val"),
    log:
        f"logs/{DATASET}/split.log",
    conda:
        DATA_ENV
    params:
        train_fraction=DATASET_CONFIG["train_fraction"],
        seed=DATASET_CONFIG["seed"],
    shell:
        "efficientdet split --annotations {input:q} --train_fraction {params.train_fraction}"
        " --seed {params.seed} --train_output {output.train:q} --val_output {output.val:q}"
        " > {log:q} 2>&1"


rule shard:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        split=DATA.split_list("{split}"),
        voc=rules.unpack.output[0],
    output:
        DATA.tfrecords / SHARD_NAME,
    log:
        f"logs/{DATASET}/shard/{{split}}-{{shard}}-of-{{num_shards}}.log",
    wildcard_constraints:
        shard=r"\d{5}",
        num_shards=r"\d{5}",
    conda:
        DATA_ENV
    resources:
        mem_mb=1000,
        runtime=30,
    shell:
        "efficientdet shard --annotations {input.annotations:q} --label_map {input.label_map:q}"
        " --split {input.split:q} --voc {input.voc:q} --shard_index {wildcards.shard}"
        " --num_shards {wildcards.num_shards} --output {output:q} > {log:q} 2>&1"


rule ground_truth:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        split=DATA.split_list("val"),
    output:
        DATA.val_coco,
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
        train=DATA.split_list("train"),
        val=DATA.split_list("val"),
    output:
        expand(
            DATA.stats / "{name}",
            name=("class_counts.csv", "objects_per_image.csv", "box_sizes.csv", "summary.yaml"),
        ),
        plots=report(
            expand(
                DATA.stats / "{name}.png",
                name=("class_counts", "objects_per_image", "box_sizes"),
            ),
            caption="../report/dataset_stats.rst",
            category="Data",
            subcategory="Statistics",
        ),
    log:
        f"logs/{DATASET}/dataset_stats.log",
    conda:
        DATA_ENV
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "efficientdet dataset_stats --annotations {input.annotations:q}"
        " --label_map {input.label_map:q} --train {input.train:q} --val {input.val:q}"
        " --output_dir {params.folder:q} > {log:q} 2>&1"


rule inspect:
    input:
        train=lambda wildcards: split_shards("train"),
        val=lambda wildcards: split_shards("val"),
    output:
        train=report(
            directory(DATA.inspect("train")),
            patterns=["{image}.jpg"],
            caption="../report/inspect.rst",
            category="Data",
            subcategory="Records: train split",
        ),
        val=report(
            directory(DATA.inspect("val")),
            patterns=["{image}.jpg"],
            caption="../report/inspect.rst",
            category="Data",
            subcategory="Records: val split",
        ),
    log:
        f"logs/{DATASET}/inspect.log",
    conda:
        DATA_ENV
    params:
        images=DATASET_CONFIG["inspect_images"],
    shell:
        "(efficientdet inspect --tfrecords {input.train:q} --num_images {params.images}"
        " --output {output.train:q}"
        " && efficientdet inspect --tfrecords {input.val:q} --num_images {params.images}"
        " --output {output.val:q}) > {log:q} 2>&1"
