"""Keras callbacks of a training run: checkpoints of good weights only."""

import logging
import math

import keras

from efficientdet.errors import UserError

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class EpochCheckpoints(keras.callbacks.Callback):
    """Saves a checkpoint numbered by the global step after every epoch whose loss is finite.

    A NaN or infinite loss stops training at once with TrainingDiverged, before the epoch's
    checkpoint, so the latest checkpoint always holds finite weights.
    """

    def __init__(self, manager, epoch, iterations):
        super().__init__()
        self.manager = manager
        self.epoch = epoch
        self.iterations = iterations

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self._check(logs.get("loss"))
        step = int(self.iterations.numpy())
        self.epoch.assign(epoch + 1)
        path = self.manager.save(checkpoint_number=step)
        log.info("epoch %d: saved %s", epoch + 1, path)

    def _check(self, loss):
        if loss is None or math.isfinite(float(loss)):
            return
        step = int(self.iterations.numpy())
        last = self.manager.latest_checkpoint or "none (no epoch finished)"
        raise TrainingDiverged(
            f"training diverged: the loss became {float(loss)} by step {step}. "
            f"No checkpoint was written after it; the last good one is {last}. "
            "Lower the learning rate (hparams learning_rate) or check the data."
        )
