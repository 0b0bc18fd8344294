"""One training run in its model_dir: model and optimizer, resume from checkpoints, Keras fit."""

import logging
import math
import shutil
import sys
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
import yaml

from efficientdet import build_model, load_checkpoint
from efficientdet.atomic import atomic_output
from efficientdet.errors import UserError
from efficientdet.layout import RunFiles, run_of_checkpoint
from efficientdet.model.checkpoints import automl_variable_names
from efficientdet.model.description import yaml_ready
from efficientdet.train import distribute, optimization
from efficientdet.train.callbacks import EpochCheckpoints
from efficientdet.train.input import make_dataset
from efficientdet.train.trainer import DetectionTrainer

log = logging.getLogger(__name__)

# What a resumed run must share with the checkpoints it resumes from.
IDENTITY = ("model_name", "image_size", "label_map")


class TrainingRun:
    """The model, optimizer and checkpoints of the run in `options.model_dir`.

    Builds everything under `strategy`'s scope, then restores the latest checkpoint, or (first
    start) loads `options.pretrained_ckpt`; records the run's description in model.yaml.
    """

    def __init__(self, options, config, params, data, strategy):
        self.options = options
        self.config = config
        self.data = data
        self.strategy = strategy
        self.chief = distribute.is_chief(strategy)
        self.files = RunFiles(Path(options.model_dir))
        self.steps_per_epoch = max(
            (options.num_examples_per_epoch or data.num_train) // options.batch_size, 1
        )
        description = describe_run(config, params, data.label_map)
        latest = self.latest_checkpoint()
        if latest:
            check_same_run(self.files.description, description)
        with strategy.scope():
            self._build(params)
            if latest:
                self._restore(latest)
            else:
                self._initialize()
        if self.chief:
            with atomic_output(self.files.description) as temporary:
                temporary.write_text(yaml.safe_dump(description, sort_keys=False))
        self.initial_epoch = int(self.epoch.numpy())

    def _build(self, params):
        num_classes = max(self.data.label_map)
        self.detector = build_model(self.config.name, num_classes, self.config.image_size)
        average = build_model(self.config.name, num_classes, self.config.image_size)
        optimization.set_batch_norm_momentum(self.detector, params["batch_norm_momentum"])
        # Patterns written for the original name its variables (efficientnet-b0/blocks_0/...).
        original_names = {
            variable.path: name for name, variable in automl_variable_names(self.detector).items()
        }
        frozen = optimization.freeze_variables(
            self.detector, params["var_freeze_expr"], original_names
        )
        if frozen:
            log.info("frozen: %d variables matching %r", len(frozen), params["var_freeze_expr"])
        self.trainer = DetectionTrainer(self.detector, average, self.config, params)
        schedule = optimization.learning_rate_schedule(
            params, self.options.batch_size, self.steps_per_epoch, self.options.num_epochs
        )
        self.trainer.compile(
            optimizer=optimization.make_optimizer(params, schedule),
            jit_compile=self.options.jit_compile,
            steps_per_execution=self.options.steps_per_execution,
        )
        self.trainer.optimizer.build(self.detector.trainable_variables)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(
            model=self.detector,
            ema_model=average,
            optimizer=self.trainer.optimizer,
            epoch=self.epoch,
        )
        # Workers other than the chief write their (identical) copy to a scratch folder.
        folder = self.files.checkpoints
        if not self.chief:
            folder = self.files.model_dir / f".{distribute.task_name(self.strategy)}"
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            folder,
            max_to_keep=self.options.keep_checkpoints,
            checkpoint_name="ckpt",
        )

    def _restore(self, path):
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise UserError(f"{path}: cannot resume from this checkpoint ({error})") from None
        log.info(
            "resuming from %s (epoch %d, step %d)",
            path,
            int(self.epoch.numpy()),
            self.global_step(),
        )
        if self.chief:
            drop_unsaved_epochs(self.files.history, self.global_step())

    def _initialize(self):
        pretrained = self.options.pretrained_ckpt
        if pretrained:
            warn_if_other_classes(pretrained, self.data.label_map)
            load_checkpoint(self.detector, pretrained)
            log.info("initialised from %s", pretrained)
        self.trainer.average.reset()

    def fit(self, after_epoch=None):
        """Trains to --num_epochs; after_epoch() is called once each epoch's checkpoint is saved."""
        options = self.options
        # Logs first: a kill between the history row and the checkpoint leaves a row that
        # the resumed run drops (see _restore).
        callbacks = []
        if self.chief:
            callbacks += [
                keras.callbacks.CSVLogger(str(self.files.history), append=True),
                keras.callbacks.TensorBoard(
                    str(self.files.tensorboard),
                    profile_batch=(2, 6) if options.profile else 0,
                ),
            ]
        callbacks.append(
            EpochCheckpoints(self.manager, self.epoch, self.trainer.optimizer.iterations)
        )
        if after_epoch:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: after_epoch()))
        validation, validation_steps = None, None
        if self.data.val_files:
            validation = self._dataset(self.data.val_files, training=False)
            validation_steps = math.ceil(self.data.num_val / options.batch_size)
        self.trainer.fit(
            self._dataset(self.data.train_files, training=True),
            epochs=options.num_epochs,
            initial_epoch=self.initial_epoch,
            steps_per_epoch=self.steps_per_epoch,
            validation_data=validation,
            validation_steps=validation_steps,
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if sys.stdout.isatty() else 2,
        )

    def _dataset(self, files, training):
        """Endless full batches; validation takes ceil(num_val / batch) of them each epoch
        (replicas must get batches of equal size)."""
        num_classes = max(self.data.label_map)

        def dataset(input_context=None):
            return make_dataset(
                files,
                self.config,
                training,
                self.options.batch_size,
                num_classes,
                input_context=input_context,
                repeat=True,
                drop_remainder=True,
                cache=self.options.cache,
            )

        if self.strategy.num_replicas_in_sync == 1:
            return dataset()
        return self.strategy.distribute_datasets_from_function(dataset)

    def epochs_done(self):
        return int(self.epoch.numpy())

    def global_step(self):
        return int(self.trainer.optimizer.iterations.numpy())

    def latest_checkpoint(self):
        steps = self.files.checkpoint_steps()
        return str(self.files.checkpoint(steps[-1])) if steps else None

    def close(self):
        """Removes a non-chief worker's scratch checkpoints."""
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)


def describe_run(config, params, label_map):
    """What model.yaml records: enough to rebuild the model and to refuse a mismatched resume."""
    return {
        "model_name": config.name,
        "image_size": list(config.image_size),
        "num_classes": max(label_map),
        "label_map": dict(label_map),
        "config": yaml_ready(config.as_dict()),
        "optimization": yaml_ready(params),
    }


def check_same_run(path, description):
    """Refuses to resume checkpoints made for another model, size or label map."""
    if not path.is_file():
        return
    recorded = yaml.safe_load(path.read_text()) or {}
    for key in IDENTITY:
        if recorded.get(key) != description[key]:
            raise UserError(
                f"{path}: the checkpoints of this run were trained with {key} "
                f"{recorded.get(key)}, not {description[key]}; train under another run name "
                "(train.run / --model_dir) or delete the run's folder"
            )


def drop_unsaved_epochs(path, step):
    """Removes history rows of epochs after `step`, whose checkpoint was never written."""
    if not path.is_file():
        return
    history = pd.read_csv(path)
    kept = history[history["step"] <= step]
    if len(kept) < len(history):
        with atomic_output(path) as temporary:
            kept.to_csv(temporary, index=False)


def warn_if_other_classes(pretrained, label_map):
    """Fine-tuning a run's checkpoint on other classes is allowed, but worth a warning."""
    description = (run_of_checkpoint(pretrained) or RunFiles(Path(pretrained))).description
    if not description.is_file():
        return
    recorded = (yaml.safe_load(description.read_text()) or {}).get("label_map") or {}
    recorded = {int(label_id): name for label_id, name in recorded.items()}
    if recorded != label_map:
        log.warning(
            "%s: the pretrained model was trained on classes %s, this dataset has %s; "
            "its class head is retrained",
            description,
            recorded,
            label_map,
        )
