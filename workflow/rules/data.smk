# The data stage: dataset archive -> validated table -> train/val split -> TFRecord shards,
# COCO ground truth, statistics and a visual check of the records.
#
# Input functions other stages can use: split_shards(split) lists the shard files of a split
# (the count follows from the split checkpoint); tfrecord_shards(wildcards) lists both splits.
# Read shards through them rather than a glob: files of an earlier images_per_shard may remain.

import importlib.util
import json
import math
import urllib.parse

from snakemake.exceptions import WorkflowError

DATASET_CONFIG = config["dataset"]
SPLITS = ("train", "val")


def dataset_source():
    """The dataset archive as a rule input: a storage object for remote URLs, else a path."""
    url = DATASET_CONFIG["url"]
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return storage.http(url)
    if scheme in ("s3", "gs"):
        provider = {"s3": "s3", "gs": "gcs"}[scheme]
        if importlib.util.find_spec(f"snakemake_storage_plugin_{provider}") is None:
            raise WorkflowError(
                f"dataset.url {url}: {scheme}:// needs snakemake-storage-plugin-{provider}"
            )
        return getattr(storage, provider)(url)
    if scheme == "file":
        return urllib.parse.unquote(parts.path)
    if scheme:
        raise WorkflowError(
            f"dataset.url {url}: unsupported URL scheme {scheme!r} "
            "(use http, https, s3, gs, file or a local path)"
        )
    return url


def split_shards(split):
    """Shard files of `split`: ceil(images / images_per_shard) of them."""
    with open(checkpoints.split.get().output[split], encoding="utf-8") as stream:
        images = sum(1 for line in stream if line.strip())
    count = math.ceil(images / DATASET_CONFIG["images_per_shard"])
    return [f"{DATA}/tfrecords/{split}-{index:05d}-of-{count:05d}.tfrecord" for index in range(count)]


def tfrecord_shards(wildcards):
    return [path for split in SPLITS for path in split_shards(split)]


def sha256_option(wildcards):
    sha256 = DATASET_CONFIG.get("sha256")
    return f"--sha256 {sha256}" if sha256 else ""


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
    shell:
        "efficientdet unpack --archive {input:q} --output {output:q} --max-gb {params.max_gb}"
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
    shell:
        "efficientdet index --voc {input:q} --label-map {params.label_map:q} --threads {threads}"
        " --annotations {output.annotations:q} --label-map-output {output.label_map:q}"
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
    shell:
        "efficientdet split --annotations {input:q} --train-fraction {params.train_fraction}"
        " --seed {params.seed} --train-output {output.train:q} --val-output {output.val:q}"
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
    shell:
        "efficientdet shard --annotations {input.annotations:q} --label-map {input.label_map:q}"
        " --split {input.split:q} --voc {input.voc:q} --shard-index {wildcards.shard}"
        " --num-shards {wildcards.num_shards} --output {output:q} > {log:q} 2>&1"


rule ground_truth:
    input:
        annotations=rules.index.output.annotations,
        label_map=rules.index.output.label_map,
        split=f"{DATA}/splits/val.txt",
    output:
        f"{DATA}/val_coco.json",
    log:
        f"logs/{DATASET}/ground_truth.log",
    shell:
        "efficientdet ground_truth --annotations {input.annotations:q}"
        " --label-map {input.label_map:q} --split {input.split:q} --output {output:q} > {log:q} 2>&1"


# Named `stats` because `dataset_stats` is the target rule in the Snakefile.
rule stats:
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
        folder=f"{DATA}/stats",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "efficientdet dataset_stats --annotations {input.annotations:q}"
        " --label-map {input.label_map:q} --train {input.train:q} --val {input.val:q}"
        " --output-dir {params.folder:q} > {log:q} 2>&1"


rule inspect_split:
    input:
        lambda wildcards: split_shards(wildcards.split),
    output:
        directory(f"{DATA}/inspect/{{split}}"),
    log:
        f"logs/{DATASET}/inspect/{{split}}.log",
    params:
        images=DATASET_CONFIG["inspect_images"],
    shell:
        "efficientdet inspect --tfrecords {input:q} --num-images {params.images}"
        " --output {output:q} > {log:q} 2>&1"
