"""Optimisation as the original EfficientDet: schedules, optimizer, L2 decay, weight averaging.

Learning rate `learning_rate * batch_size / 64` with a linear warmup from
`lr_warmup_init * batch_size / 64` over `lr_warmup_epoch` epochs, then cosine, stepwise (x0.1 at
`first_lr_drop_epoch`, x0.01 at `second_lr_drop_epoch`) or polynomial decay; SGD with momentum
or Adam, gradients clipped to a global norm; L2 weight decay on kernels added to the loss; an
exponential moving average of the weights with the original's dynamic decay.
"""

import re

import keras
import tensorflow as tf

from efficientdet.errors import UserError
from efficientdet.keras_internals import flatten_layers

REFERENCE_BATCH_SIZE = 64

# The original's optimisation hyperparameters, for the names the variant table may lack.
DEFAULTS = {
    "learning_rate": 0.08,
    "lr_warmup_init": 0.008,
    "lr_warmup_epoch": 1.0,
    "lr_decay_method": "cosine",
    "first_lr_drop_epoch": 200.0,
    "second_lr_drop_epoch": 250.0,
    "poly_lr_power": 0.9,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 4e-5,
    "clip_gradients_norm": 10.0,
    "moving_average_decay": 0.9998,
    "var_freeze_expr": None,
    # Not the original's: None keeps the model's 0.99; short runs want faster statistics.
    "batch_norm_momentum": None,
}


@keras.saving.register_keras_serializable(package="efficientdet")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `initial` to the start of `after`, which then runs from step 0."""

    def __init__(self, initial, warmup_steps, after):
        self.initial = initial
        self.warmup_steps = warmup_steps
        self.after = after

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup_steps = float(max(self.warmup_steps, 1))
        target = tf.cast(self.after(0), tf.float32)
        warmup = self.initial + (target - self.initial) * step / warmup_steps
        decayed = tf.cast(self.after(tf.maximum(step - self.warmup_steps, 0.0)), tf.float32)
        return tf.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "initial": self.initial,
            "warmup_steps": self.warmup_steps,
            "after": keras.optimizers.schedules.serialize(self.after),
        }

    @classmethod
    def from_config(cls, config):
        after = keras.optimizers.schedules.deserialize(config.pop("after"))
        return cls(after=after, **config)


def scaled_learning_rate(params, batch_size):
    """The peak learning rate for a global batch: learning_rate * batch_size / 64."""
    return float(params["learning_rate"]) * batch_size / REFERENCE_BATCH_SIZE


def learning_rate_schedule(params, batch_size, steps_per_epoch, epochs):
    """The original's schedule for `epochs` epochs of `steps_per_epoch` steps."""
    peak = scaled_learning_rate(params, batch_size)
    initial = float(params["lr_warmup_init"]) * batch_size / REFERENCE_BATCH_SIZE
    warmup_steps = int(float(params["lr_warmup_epoch"]) * steps_per_epoch)
    decay_steps = max(int(epochs * steps_per_epoch) - warmup_steps, 1)
    method = params["lr_decay_method"]
    schedules = keras.optimizers.schedules
    if method == "cosine":
        after = schedules.CosineDecay(peak, decay_steps)
    elif method == "stepwise":
        drops = [
            max(int(float(params[key]) * steps_per_epoch) - warmup_steps, 0)
            for key in ("first_lr_drop_epoch", "second_lr_drop_epoch")
        ]
        after = schedules.PiecewiseConstantDecay(drops, [peak, peak * 0.1, peak * 0.01])
    elif method == "polynomial":
        after = schedules.PolynomialDecay(
            peak, decay_steps, end_learning_rate=0.0, power=float(params["poly_lr_power"])
        )
    else:
        raise UserError(
            f"hparams lr_decay_method: {method!r} is not cosine, stepwise or polynomial"
        )
    return WarmupSchedule(initial, warmup_steps, after)


def make_optimizer(params, schedule):
    """SGD with momentum or Adam, gradients clipped to `clip_gradients_norm` (global norm)."""
    clip = params["clip_gradients_norm"]
    clip = float(clip) if clip else None
    name = str(params["optimizer"]).lower()
    if name == "sgd":
        momentum = float(params["momentum"])
        return keras.optimizers.SGD(schedule, momentum=momentum, global_clipnorm=clip)
    if name == "adam":
        return keras.optimizers.Adam(schedule, global_clipnorm=clip)
    raise UserError(f"hparams optimizer: {params['optimizer']!r} is not sgd or adam")


def is_decayed(variable):
    """Whether the original applies L2 weight decay to `variable`: kernels of every kind."""
    return variable.name.endswith("kernel")


def l2_loss(variables, weight_decay):
    """weight_decay * sum(||w||^2) / 2 over `variables`, in float32."""
    if not variables or not weight_decay:
        return tf.constant(0.0)
    squares = [tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables]
    return float(weight_decay) * tf.add_n(squares)


def freeze_variables(model, pattern, original_names=None):
    """Makes the variables whose path, or name in `original_names` ({path: the original's
    variable name}), `pattern` matches from the start (re.match, as the original)
    untrainable; returns them."""
    if not pattern:
        return []
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise UserError(f"hparams var_freeze_expr: {pattern!r} is not a regex: {error}") from None
    original_names = original_names or {}
    frozen = [
        v
        for v in model.trainable_variables
        if regex.match(v.path) or regex.match(original_names.get(v.path, ""))
    ]
    if not frozen:
        raise UserError(f"hparams var_freeze_expr: {pattern!r} matches no trainable variable")
    for variable in frozen:
        variable.trainable = False
    return frozen


def set_batch_norm_momentum(model, momentum):
    """Sets the momentum of the moving statistics of every batch normalization in `model`."""
    if momentum is None:
        return
    if not 0 <= float(momentum) < 1:
        raise UserError(f"hparams batch_norm_momentum: {momentum} is not in [0, 1)")
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)


class WeightAverage:
    """Exponential moving average of every weight of `model`, held in `average` (a twin model).

    The decay grows with the step as the original's: min(decay, (1 + step) / (10 + step)), so
    that short runs are not dominated by the initial weights.
    """

    def __init__(self, model, average, decay):
        self.model = model
        self.average = average
        self.decay = float(decay)
        self.average.trainable = False

    def reset(self):
        """Starts the average at the model's current weights."""
        for source, target in zip(self.model.weights, self.average.weights):
            target.assign(source)

    def update(self, step):
        """Folds the current weights into the average; call in a replica context."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        pairs = list(zip(self.model.weights, self.average.weights))
        tf.distribute.get_replica_context().merge_call(self._assign, args=(pairs, decay))

    @staticmethod
    def _assign(strategy, pairs, decay):
        def moved(average, value, decay):
            if not average.dtype.is_floating:
                return average.assign(value, read_value=False)
            step = (1.0 - tf.cast(decay, average.dtype)) * (average - value)
            return average.assign_sub(step, read_value=False)

        for source, target in pairs:
            strategy.extended.update(
                _tf_variable(target), moved, args=(_tf_variable(source), decay)
            )


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable
