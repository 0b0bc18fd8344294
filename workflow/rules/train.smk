# Training: one job trains models/{RUN}/, resuming from its latest checkpoint.
#
# The training state (checkpoints, history, TensorBoard logs) is not a declared output: Snakemake
# deletes the outputs of failed jobs, and a rerun must resume where the last one stopped. The
# declared output is results/{RUN}/train.done.json, written when training completes. Raising
# train.epochs changes the job's parameters, so Snakemake reruns it and training continues.
# `train` is a Snakemake checkpoint: evaluation lists models/{RUN}/checkpoints/ once it is done.

import json
import shlex

MODEL_CONFIG = config["model"]
TRAIN_CONFIG = config["train"]


def split_file_pattern(split):
    """A glob matching exactly the current shards of `split` (they share -of-{count})."""
    return split_shards(split)[0].replace(f"{split}-00000-", f"{split}-?????-")


def hparams_file(wildcards):
    """The hparams YAML file as an input (so editing it reruns training), if one is given."""
    hparams = MODEL_CONFIG["hparams"]
    return [hparams] if isinstance(hparams, str) else []


def train_flags(wildcards):
    """The flags of `efficientdet train` that the config sets."""
    hparams = MODEL_CONFIG["hparams"]
    values = {
        "mode": TRAIN_CONFIG["mode"],
        "train_file_pattern": split_file_pattern("train"),
        "val_file_pattern": split_file_pattern("val"),
        "model_name": MODEL_CONFIG["name"],
        "image_size": MODEL_CONFIG["image_size"],
        "pretrained_ckpt": MODEL_CONFIG["pretrained"],
        "hparams": hparams if isinstance(hparams, str) else json.dumps(hparams),
        "batch_size": TRAIN_CONFIG["batch_size"],
        "num_epochs": TRAIN_CONFIG["epochs"],
        "num_examples_per_epoch": TRAIN_CONFIG["examples_per_epoch"],
        "eval_samples": config["evaluate"]["max_samples"],
        "strategy": TRAIN_CONFIG["strategy"],
        "mixed_precision": TRAIN_CONFIG["mixed_precision"],
        "jit_compile": TRAIN_CONFIG["jit_compile"],
        "steps_per_execution": TRAIN_CONFIG["steps_per_execution"],
        "keep_checkpoints": TRAIN_CONFIG["keep_checkpoints"],
        "cache": TRAIN_CONFIG["cache"],
    }
    return " ".join(
        shlex.quote(f"--{name}={value}") for name, value in values.items() if value is not None
    )


checkpoint train:
    input:
        shards=tfrecord_shards,
        label_map=f"{DATA}/label_map.yaml",
        stats=f"{DATA}/stats/summary.yaml",
        hparams=hparams_file,
    output:
        f"results/{RUN}/train.done.json",
    log:
        f"logs/{RUN}/train.log",
    params:
        flags=train_flags,
        model_dir=f"models/{RUN}",
    threads: 8
    resources:
        mem_mb=16000,
        runtime=1440,
        gpu=1,
    shell:
        "efficientdet train {params.flags} --model_dir={params.model_dir:q}"
        " --label_map={input.label_map:q} --dataset_stats={input.stats:q}"
        " --done={output:q} > {log:q} 2>&1"
