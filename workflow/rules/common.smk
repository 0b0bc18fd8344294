import dataclasses
import importlib.util
import itertools
import json
import math
import os
import re
import shlex
import sys
import threading
import urllib.parse
from pathlib import PurePosixPath

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from efficientdet.config import get_config
from efficientdet.automl_hparams import label_map_from
from efficientdet.layout import SHARD_NAME, DatasetFiles, RunFiles, checkpoint_steps_in
from efficientdet.train import state_storage

# Config validation, the names every rule file uses, and the input functions of the rule
# files (one section each), so that rules/*.smk hold only rules.

validate(config, workflow.source_path("../schemas/config.schema.yaml"))

DATASET = config["dataset"]["name"]
DATA = DatasetFiles.named(DATASET)
# A training run: models/{RUN}/ holds its state, results/{RUN}/ what is made from it.
RUN = config["train"]["run"] or f"{DATASET}-{config['model']['name']}"
RUN_FILES = RunFiles.named(RUN)

# Conda environments of the rules (--software-deployment-method conda), relative to rules/.
# Their last pip line installs this checkout; pip reads its path from a variable set here (the
# workflow provides it, so it is not an `envvars:` requirement of the user's).
os.environ.update(EFFICIENTDET_SOURCE=os.path.dirname(workflow.basedir))
DATA_ENV = "../../envs/data.yaml"
MODEL_ENV = {"cpu": "../../envs/model.yaml", "cuda": "../../envs/model-cuda.yaml"}[
    config["software"]["tensorflow"]
]


# Remote default storage (--default-storage-provider), as on the cloud: jobs share no file
# system, so `train` keeps models/{RUN}/ in the storage too (--state_url, through the same
# storage plugin), and every rule declares what it reads of that folder. Paths in params are
# where a job finds its inputs: their local copies (on_this_machine).
STORAGE = workflow.storage_registry.default_storage_provider
if STORAGE is not None:
    os.environ[state_storage.ENVIRONMENT] = json.dumps(
        {
            "provider": workflow.storage_settings.default_storage_provider,
            "settings": dataclasses.asdict(STORAGE.settings) if STORAGE.settings else {},
        }
    )


def stored(path):
    """The storage object of a workflow path, as Snakemake maps it to the default storage."""
    mapped = workflow.modifier.path_modifier.apply_default_storage(str(path))
    return mapped.flags["storage_object"]


def on_this_machine(path):
    """Where a job finds `path` of the workflow: itself, or its copy from remote storage."""
    return path if STORAGE is None else stored(path).local_path()


def readable(path):
    """`path`, a finished job's output, where this process can read it: with remote storage,
    its local copy, fetched again if Snakemake has removed it since."""
    if STORAGE is None:
        return path
    storage_object = stored(path)
    copy = storage_object.local_path()
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        storage_object.retrieve_object()
    return copy


def check_same_run():
    """Stops before any job when the config no longer fits models/{RUN}/, whichever target:
    its checkpoints cannot be resumed, evaluated or exported as another model."""
    recorded_file = RUN_FILES.description
    if not recorded_file.is_file():
        return
    with open(recorded_file, encoding="utf-8") as stream:
        recorded = yaml.safe_load(stream) or {}
    model = get_config(config["model"]["name"], image_size=config["model"]["image_size"])
    wanted = {
        "model.name": (recorded.get("model_name"), model.name),
        "model.image_size": (recorded.get("image_size"), list(model.image_size)),
    }
    if config["dataset"]["label_map"]:
        wanted["dataset.label_map"] = (
            recorded.get("label_map"),
            label_map_from(config["dataset"]["label_map"], "dataset.label_map"),
        )
    for key, (trained, configured) in wanted.items():
        if trained != configured:
            raise WorkflowError(
                f"{key}: {RUN_FILES.model_dir}/ was trained with {trained}, not {configured} "
                f"(see {recorded_file}); to start a new run beside it, give train.run a new name "
                f"in the config (e.g. train: {{run: {RUN}-2}}), or delete {RUN_FILES.model_dir}/ "
                f"and {RUN_FILES.results}/"
            )


check_same_run()


# Data stage (rules/data.smk)
# split_shards(split) lists the shard files of a split (the count follows from the split
# checkpoint); tfrecord_shards(wildcards) lists both splits. Read shards through them rather
# than a glob: files of an earlier images_per_shard may remain.

DATASET_CONFIG = config["dataset"]
SPLITS = ("train", "val")


def dataset_archives():
    """{file name in resources/datasets/{DATASET}/: (url, sha256 or None)} of dataset.url."""
    url = DATASET_CONFIG["url"]
    if isinstance(url, str):
        entries = [{"url": url, "sha256": DATASET_CONFIG.get("sha256")}]
    elif DATASET_CONFIG.get("sha256"):
        raise WorkflowError(
            "dataset.sha256 is for a single url; give each archive of the dataset.url list "
            "its own: {url: ..., sha256: ...}"
        )
    else:
        entries = [item if isinstance(item, dict) else {"url": item} for item in url]
    archives = {}
    for entry in entries:
        parts = urllib.parse.urlsplit(entry["url"])
        path = urllib.parse.unquote(parts.path) if parts.scheme else entry["url"]
        name = PurePosixPath(path).name
        if not name:
            raise WorkflowError(f"dataset.url {entry['url']}: no file name at its end")
        if name in archives:
            raise WorkflowError(
                f"dataset.url: two archives named {name} ({archives[name][0]} and "
                f"{entry['url']}); each needs its own file name"
            )
        archives[name] = (entry["url"], entry.get("sha256"))
    return archives


ARCHIVES = dataset_archives()


def local_path(url):
    """The file of a local dataset.url (a path or a file:// URL); None for a remote one."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        return url
    return urllib.parse.unquote(parts.path) if parts.scheme.lower() == "file" else None


# A local archive without a sha256 is read where it lies. The others reach `unpack` through
# `download`, which fetches them, or copies and checks them, into resources/datasets/.
DOWNLOADS = [name for name, (url, sha256) in ARCHIVES.items() if sha256 or local_path(url) is None]
ARCHIVE_FILES = [
    f"resources/datasets/{DATASET}/{name}" if name in DOWNLOADS else local_path(url)
    for name, (url, _) in ARCHIVES.items()
]


def dataset_source(wildcards):
    """The archive that `download` reads: a storage object for remote URLs, else a path."""
    url = ARCHIVES[wildcards.archive][0]
    path = local_path(url)
    if path is not None:
        return path
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return storage.http(url)
    if scheme in ("s3", "gs"):
        provider = {"s3": "s3", "gs": "gcs"}[scheme]
        if importlib.util.find_spec(f"snakemake_storage_plugin_{provider}") is None:
            raise WorkflowError(
                f"dataset.url {url}: {scheme}:// needs snakemake-storage-plugin-{provider}"
            )
        return getattr(storage, provider)(url)
    raise WorkflowError(
        f"dataset.url {url}: unsupported URL scheme {scheme!r} "
        "(use http, https, s3, gs, file or a local path)"
    )


def sha256_option(wildcards):
    sha256 = ARCHIVES[wildcards.archive][1]
    return f"--sha256 {sha256}" if sha256 else ""


def split_lists_option(wildcards):
    splits = DATASET_CONFIG["splits"]
    if not splits:
        return ""
    return " ".join(
        f"--{split}_lists {' '.join(map(shlex.quote, splits[split]))}" for split in SPLITS
    )


def split_shards(split):
    """Shard files of `split`: ceil(images / images_per_shard) of them."""
    checkpoints.split.get()
    with open(readable(DATA.split_list(split)), encoding="utf-8") as stream:
        images = sum(1 for line in stream if line.strip())
    count = math.ceil(images / DATASET_CONFIG["images_per_shard"])
    return [DATA.shard(split, index, count) for index in range(count)]


def tfrecord_shards(wildcards):
    return [path for split in SPLITS for path in split_shards(split)]


def dataset_label_map():
    """dataset.label_map, else the label_map of model.hparams: an hparams file written for
    google/automl names the ids of the dataset (e.g. `label_map: voc`)."""
    given = DATASET_CONFIG["label_map"]
    hparams = config["model"]["hparams"]
    if isinstance(hparams, str):
        try:
            with open(hparams, encoding="utf-8") as stream:
                hparams = yaml.safe_load(stream)
        except (OSError, yaml.YAMLError) as error:
            raise WorkflowError(f"model.hparams: cannot read {hparams} ({error})")
    from_hparams = hparams.get("label_map") if isinstance(hparams, dict) else None
    if given is not None and from_hparams is not None and given != from_hparams:
        raise WorkflowError(
            "dataset.label_map and the label_map of model.hparams differ: give only one"
        )
    return given if given is not None else from_hparams


# Training (rules/train.smk)

MODEL_CONFIG = config["model"]
TRAIN_CONFIG = config["train"]


def split_file_pattern(split):
    """A glob matching exactly the current shards of `split` (they share -of-{count})."""
    first = on_this_machine(split_shards(split)[0])
    return str(first).replace(f"{split}-00000-", f"{split}-?????-")


def hparams_file(wildcards):
    """The hparams YAML file as an input (so editing it reruns training), if one is given."""
    hparams = MODEL_CONFIG["hparams"]
    return [hparams] if isinstance(hparams, str) else []


def train_launcher(wildcards, resources):
    """`srun --ntasks=N` where a profile gives `train` the resources `mpi: srun` and `tasks: N`
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
        "strategy": TRAIN_CONFIG["strategy"],
        "mixed_precision": TRAIN_CONFIG["mixed_precision"],
        "jit_compile": TRAIN_CONFIG["jit_compile"],
        "steps_per_execution": TRAIN_CONFIG["steps_per_execution"],
        "keep_checkpoints": TRAIN_CONFIG["keep_checkpoints"],
        "cache": TRAIN_CONFIG["cache"],
        "state_url": None if STORAGE is None else stored(RUN_FILES.model_dir).query,
    }
    return " ".join(
        shlex.quote(f"--{name}={value}") for name, value in values.items() if value is not None
    )


# Evaluation (rules/evaluate.smk)

EVALUATE_CONFIG = config["evaluate"]


def trained(path):
    """An input function giving `path` of models/{RUN}/ once training has written it."""

    def after_training(wildcards):
        checkpoints.train.get()
        return path

    return after_training


def checkpoint_files():
    """Names of the files in models/{RUN}/checkpoints/ once training is done: on disk, or as
    train.done.json lists them where that folder is in remote storage."""
    checkpoints.train.get()
    if STORAGE is None:
        return RUN_FILES.checkpoint_files()
    with open(readable(RUN_FILES.done), encoding="utf-8") as stream:
        return json.load(stream)["checkpoint_files"]


def checkpoint_steps():
    return checkpoint_steps_in(checkpoint_files())


def files_of_checkpoints(steps):
    """The files of checkpoints ckpt-{step} (.index and data), as listed by checkpoint_files."""
    prefixes = tuple(f"{RUN_FILES.checkpoint(step).name}." for step in steps)
    return [
        RUN_FILES.checkpoints / name for name in checkpoint_files() if name.startswith(prefixes)
    ]


def checkpoint_of_step(wildcards):
    """The checkpoint that evaluate_checkpoint reads: its .index file on a shared file system
    (TensorFlow finds the data beside it), all its files where they are in remote storage."""
    index = f"{RUN_FILES.checkpoint(wildcards.step)}.index"
    if STORAGE is None:
        return [index]
    return files_of_checkpoints([wildcards.step]) or [index]


def stored_checkpoints(wildcards):
    """What export reads of models/{RUN}/ where it is in remote storage: model.yaml and the
    checkpoints it chooses from (on a shared file system, nothing: deleting an old checkpoint
    must not rerun export)."""
    if STORAGE is None:
        return []
    steps = checkpoint_steps()
    return [
        RUN_FILES.description,
        *files_of_checkpoints(steps[-1:] if EXPORT_CONFIG["checkpoint"] == "last" else steps),
    ]


def checkpoint_evaluations(wildcards):
    """One evaluation per checkpoint, plus, on a shared file system, those already made of
    checkpoints deleted since (keep_checkpoints): the table shows them all, and a deletion
    leaves its inputs as they were, so it never reruns. (Remote storage is not listed: there
    the table shows the checkpoints that training keeps.)"""
    evaluated = RUN_FILES.evaluated_steps() if STORAGE is None else []
    steps = sorted(set(checkpoint_steps()) | set(evaluated))
    return [RUN_FILES.evaluation(step) for step in steps]


def eval_samples_option(wildcards):
    samples = EVALUATE_CONFIG.get("max_samples")
    return f"--eval_samples={samples}" if samples else ""


# Export (rules/export.smk)

EXPORT_CONFIG = config["export"]


def export_evaluations(wildcards):
    """The evaluations export needs: all of them for "best", the last checkpoint's for "last"."""
    if EXPORT_CONFIG["checkpoint"] == "best":
        return checkpoint_evaluations(wildcards)
    return [RUN_FILES.evaluation(step) for step in checkpoint_steps()[-1:]]


def evaluations_with_plots(wildcards):
    """export_evaluations and their PR-curve plots."""
    evaluations = export_evaluations(wildcards)
    return [*evaluations, *(path.with_suffix(".png") for path in evaluations)]


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
    return {"list": DATA.split_list("val"), "root": DATA.voc}


def infer_images_option(wildcards):
    if INFER_CONFIG["images"]:
        return f"--images={shlex.quote(INFER_CONFIG['images'])}"
    default = {
        name: shlex.quote(str(on_this_machine(path)))
        for name, path in infer_images(wildcards).items()
    }
    return f"--images={default['list']} --image_root={default['root']}"


# The default target (Snakefile): everything a run makes, per stage (the records come with the
# jobs that read them). `snakemake --report` asks for the same target; it reports only the stages
# whose files are all there, so a run that stopped early (e.g. training failed) still reports its
# data stage. The list is made when the Snakefile is read, not by an input function: a target
# whose input function reads a checkpoint's output hides the evaluations that a config change
# makes stale.

REPORTING = any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv)


def stage_outputs():
    """{stage: the files it ends with}, as the report's categories."""
    return {
        "Data": [
            *rules.index.output,
            *rules.ground_truth.output,
            *rules.dataset_stats.output,
            *rules.inspect.output,
        ],
        "Training": [*rules.training_curves.output, *rules.inspect_pipeline.output],
        "Evaluation": rules.evaluate.output,
        "Export": rules.export_report.output,
        "Predictions": rules.infer.output,
    }


def default_targets():
    stages = stage_outputs()
    if not REPORTING:
        return list(itertools.chain(*stages.values()))
    done = [files for files in stages.values() if all(map(os.path.exists, files))]
    if not done:
        raise WorkflowError(
            "nothing to report yet: run the workflow first (`snakemake --cores all`), then "
            "`snakemake --report report.html`"
        )
    return list(itertools.chain(*done))


# Run end. Snakemake 9's job rate limiter (--max-jobs-per-timespan, default 100/1s) starts a
# non-daemon threading.Timer on every scheduler pass, only to wake the scheduler again, and the
# interpreter waits for the last one before it exits: each run, and each cluster job's run,
# would end a timespan after its work.


def cancel_scheduler_timers():
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.function.__module__.startswith(
            "snakemake.scheduling"
        ):
            thread.cancel()


onsuccess:
    cancel_scheduler_timers()


onerror:
    cancel_scheduler_timers()
