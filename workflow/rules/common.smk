import importlib.util
import json
import math
import os
import shlex
import urllib.parse

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Config validation, the names every rule file uses, and the input functions of the rule
# files (one section each), so that rules/*.smk hold only rules.

validate(config, workflow.source_path("../schemas/config.schema.yaml"))

DATASET = config["dataset"]["name"]
DATA = f"results/{DATASET}"
# A training run: models/{RUN}/ holds its state, results/{RUN}/ what is made from it.
RUN = config["train"]["run"] or f"{DATASET}-{config['model']['name']}"

# Conda environments of the rules (--software-deployment-method conda), relative to rules/.
# Their last pip line installs this checkout; pip reads its path from the environment.
os.environ["EFFICIENTDET_SOURCE"] = os.path.dirname(workflow.basedir)
DATA_ENV = "../../envs/data.yaml"
MODEL_ENV = {"cpu": "../../envs/model.yaml", "cuda": "../../envs/model-cuda.yaml"}[
    config["software"]["tensorflow"]
]



# Data stage (rules/data.smk)
# split_shards(split) lists the shard files of a split (the count follows from the split
# checkpoint); tfrecord_shards(wildcards) lists both splits. Read shards through them rather
# than a glob: files of an earlier images_per_shard may remain.

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


# Training (rules/train.smk)

MODEL_CONFIG = config["model"]
TRAIN_CONFIG = config["train"]


def split_file_pattern(split):
    """A glob matching exactly the current shards of `split` (they share -of-{count})."""
    return split_shards(split)[0].replace(f"{split}-00000-", f"{split}-?????-")


def hparams_file(wildcards):
    """The hparams YAML file as an input (so editing it reruns training), if one is given."""
    hparams = MODEL_CONFIG["hparams"]
    return [hparams] if isinstance(hparams, str) else []


def train_launcher(wildcards, resources):
    """`srun --ntasks=N` where a profile gives the train rule `mpi: srun` and `tasks: N`
    (multi_worker training, one process per task), else nothing."""
    launcher = resources.get("mpi")
    return f"{launcher} --ntasks={resources.get('tasks', 1)}" if launcher else ""


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


# Evaluation (rules/evaluate.smk)

EVAL = f"results/{RUN}/eval"
CHECKPOINT_DIR = f"models/{RUN}/checkpoints"
EVALUATE_CONFIG = config["evaluate"]


def checkpoint_evaluations(wildcards):
    checkpoints.train.get()
    steps = glob_wildcards(f"{CHECKPOINT_DIR}/ckpt-{{step,\\d+}}.index").step
    return expand(f"{EVAL}/ckpt-{{step}}.json", step=sorted(set(steps), key=int))


def eval_samples_option(wildcards):
    samples = EVALUATE_CONFIG.get("max_samples")
    return f"--eval_samples={samples}" if samples else ""


# Export (rules/export.smk)

EXPORT_CONFIG = config["export"]


def export_evaluations(wildcards):
    """The evaluations export needs: all of them for "best", the last checkpoint's for "last"."""
    evaluations = checkpoint_evaluations(wildcards)
    if EXPORT_CONFIG["checkpoint"] == "best":
        return evaluations
    return evaluations[-1:]


# Inference (rules/infer.smk)

INFER_CONFIG = config["infer"]
EXPORTED_FILES = {
    "saved_model": "saved_model",
    "frozen_graph": "frozen_model.pb",
    "tflite_fp32": "model_fp32.tflite",
    "tflite_fp16": "model_fp16.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}


def infer_images(wildcards):
    """The validation list and the unpacked dataset when infer.images is null, else nothing
    (a user's folder or glob is not a file Snakemake can track)."""
    if INFER_CONFIG["images"]:
        return {}
    return {"list": f"{DATA}/splits/val.txt", "root": f"{DATA}/voc"}


def infer_images_option(wildcards, input):
    if INFER_CONFIG["images"]:
        return f"--images={shlex.quote(INFER_CONFIG['images'])}"
    return f"--images={shlex.quote(input.list)} --image_root={shlex.quote(input.root)}"
