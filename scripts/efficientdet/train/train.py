"""`efficientdet train`: train an EfficientDet, resuming from the latest checkpoint of the run.

Accepts the original tool's flags, @params files and environment variables (efficientdet.flags).
The training state lives in --model_dir (models/{run}/ in the workflow):

    checkpoints/ckpt-{global_step}.*  tf.train.Checkpoint with `model` (the trained weights),
                                      `ema_model` (their moving average: evaluate and export
                                      these), `optimizer` and `epoch`; one per epoch, the last
                                      --keep_checkpoints kept
    model.yaml                        model name, image size, label map and hyperparameters
    history.csv                       one row per epoch: losses, learning rate, step, val_loss
    logs/                             TensorBoard (train/, validation/)

A rerun resumes from the latest checkpoint, also after the process was killed; a larger
--num_epochs continues a finished run. With --state_url the folder is also kept in remote
storage (efficientdet.train.state_storage), so that the next run may start on another machine.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path

from efficientdet import automl_hparams, flags
from efficientdet.atomic import atomic_output
from efficientdet.config import EfficientDetConfig, get_config
from efficientdet.errors import UserError
from efficientdet.train import distribute, optimization, state_storage, url_dataset
from efficientdet.train.run import TrainingRun
from efficientdet.train.training_data import describe_training_data

log = logging.getLogger(__name__)

TRAIN_FLAGS = (
    flags.Flag("image_size", str, None, "model input size, an int or WxH (default: the variant's)"),
    flags.Flag(
        "label_map",
        str,
        None,
        "label_map.yaml of the dataset (default: beside the tfrecords folder, else read "
        "from the records)",
    ),
    flags.Flag(
        "dataset_stats",
        str,
        None,
        "summary.yaml giving max_objects_per_image (default: beside the tfrecords folder)",
    ),
    flags.Flag(
        "strategy",
        str,
        "default",
        "distribution strategy (or the original's gpus, multi-gpus)",
        choices=distribute.STRATEGIES + tuple(distribute.ORIGINAL_STRATEGIES),
    ),
    flags.Flag("tpu", str, None, "TPU name or grpc:// address for --strategy=tpu"),
    flags.Flag(
        "mixed_precision",
        str,
        "auto",
        "auto (float16 on GPU, bfloat16 on TPU), float32, mixed_float16, mixed_bfloat16",
        choices=("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    ),
    flags.Flag("jit_compile", flags.parse_bool, False, "compile training steps with XLA"),
    flags.Flag("use_xla", flags.parse_bool, False, "the original's name of --jit_compile"),
    flags.Flag("steps_per_execution", flags.positive_int, 1, "training steps per tf.function call"),
    flags.Flag("keep_checkpoints", flags.positive_int, 10, "number of checkpoints to keep"),
    flags.Flag("cache", flags.parse_bool, False, "keep the decoded images in memory"),
    flags.Flag("done", str, None, "JSON file written when training completes"),
    flags.Flag(
        "state_url",
        str,
        None,
        "keep the run's state there (e.g. s3://bucket/models/run), through the storage plugin "
        f"named in ${state_storage.ENVIRONMENT}: --model_dir is then a working copy, replaced by "
        "what is stored there (emptied if nothing is) and stored after every epoch",
    ),
)


def add_arguments(parser):
    flags.add_flags(parser, flags.ORIGINAL_FLAGS + TRAIN_FLAGS)


def run(options):
    if options.mode == "eval":
        raise UserError("--mode=eval: evaluation is `efficientdet evaluate` (same flags)")
    train(options)


def train(options):
    """Trains as `options` (resolved flags) say; returns the summary also written to --done."""
    started = time.time()
    if not options.model_dir:
        raise UserError("--model_dir is required: it holds the checkpoints of the run")
    stored = None
    if options.state_url:
        if distribute.ORIGINAL_STRATEGIES.get(options.strategy, options.strategy) == "multi_worker":
            raise UserError(
                "--state_url with --strategy=multi_worker: the workers would share one copy of "
                "the stored state; train several workers on a shared file system instead"
            )
        stored = state_storage.StateStorage(
            options.model_dir, options.state_url, state_storage.storage_provider()
        )
        stored.pull()
    if options.url_dataset and not options.train_file_pattern:
        options.train_file_pattern, val_records = url_dataset.prepare(
            options.url_dataset, Path(options.model_dir) / "dataset", options.train_valid_split
        )
        options.val_file_pattern = options.val_file_pattern or val_records
    hparams = automl_hparams.translate(flags.parse_hparams(options.hparams), options.model_name)
    # As the original: --num_epochs beats hparams num_epochs, which beats the default.
    options.num_epochs = (
        options.num_epochs or hparams.get("num_epochs") or EfficientDetConfig.num_epochs
    )
    hparams["num_epochs"] = options.num_epochs
    options.jit_compile = options.jit_compile or options.use_xla
    # Before any TensorFlow op: multi-worker collectives are configured at start-up.
    strategy = distribute.make_strategy(options.strategy, options.tpu)
    log.info("strategy %s: %d replicas", options.strategy, strategy.num_replicas_in_sync)
    data = describe_training_data(options, hparams)
    distribute.set_precision(options.mixed_precision, strategy)
    config, params = training_params(options, hparams, data)
    run = TrainingRun(options, config, params, data, strategy)
    if run.initial_epoch >= options.num_epochs:
        log.info(
            "%s: already trained %d epochs (--num_epochs=%d)",
            options.model_dir,
            run.initial_epoch,
            options.num_epochs,
        )
    else:
        run.fit(after_epoch=stored.push if stored else None)
    summary = {
        "model_dir": options.model_dir,
        "model_name": config.name,
        "epochs": run.epochs_done(),
        "global_step": run.global_step(),
        "checkpoint": run.latest_checkpoint(),
        # The workflow lists the checkpoints from here where the folder is in remote storage.
        "checkpoint_files": run.files.checkpoint_files(),
        "seconds": round(time.time() - started, 1),
    }
    run.close()
    if stored:
        stored.push()
    if run.chief and options.done:
        with atomic_output(options.done) as temporary:
            temporary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def training_params(options, hparams, data):
    """(model config, optimisation params) from the variant, hparams and the data."""
    model_keys = {field.name for field in dataclasses.fields(EfficientDetConfig)}
    # The original counts a background class in num_classes (21 for VOC) but never trains
    # that output; the model here has one class output per label id.
    num_classes = max(data.label_map)
    if hparams.get("num_classes") not in (None, num_classes, num_classes + 1):
        raise UserError(
            f"hparams num_classes={hparams['num_classes']} but the label map has ids up to "
            f"{num_classes}"
        )
    overrides = {key: value for key, value in hparams.items() if key in model_keys}
    overrides["max_instances_per_image"] = data.max_objects
    if options.image_size:
        overrides["image_size"] = options.image_size
    training_keys = set(optimization.DEFAULTS) - model_keys
    unknown = set(hparams) - model_keys - training_keys - {"label_map", "num_classes"}
    if unknown:
        raise UserError(f"--hparams: unknown key(s) {', '.join(sorted(unknown))}")
    config = get_config(options.model_name, **overrides)
    params = {key: getattr(config, key, value) for key, value in optimization.DEFAULTS.items()}
    params.update({key: value for key, value in hparams.items() if key in training_keys})
    return config, params
