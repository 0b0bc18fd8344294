"""The places where this project relies on private parts of Keras, each in one place, with a
check that the installed Keras still matches them (written against Keras 3.15).

`check_keras_internals()` runs when the trainer is imported, so a Keras upgrade that changes one
of them fails at once with the name of the override, not deep inside a training run.
"""

import inspect

import keras
import tensorflow as tf

from efficientdet.errors import UserError

WRITTEN_FOR = "3.15"
# keras.Model's hook that builds a model from a data batch before fit (TensorFlow trainer).
SYMBOLIC_BUILD = "_maybe_symbolic_build"
SYMBOLIC_BUILD_PARAMETERS = ("self", "iterator", "data_batch")
FLATTEN_LAYERS = "_flatten_layers"


def flatten_layers(model):
    """Every layer inside `model`, nested sublayers included (`model.layers` lists only the
    top level, and Keras has no public way to walk sublayers of custom layers)."""
    return getattr(model, FLATTEN_LAYERS)()


class PrebuiltModel(keras.Model):
    """A keras.Model whose layers and optimizer exist before `fit`: Keras' symbolic build from a
    data batch is skipped. Keras 3.15 would first reduce that batch over the replicas, which
    fails for nested batches under MultiWorkerMirroredStrategy."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        pass


def multi_worker_logs(logs):
    """Keras 3.15 averages the logs of a multi-worker step along axis 0, which scalars lack:
    each becomes a vector of one."""
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def check_keras_internals():
    """Raises UserError naming each override that the installed Keras no longer matches."""
    problems = []
    if not callable(getattr(keras.layers.Layer, FLATTEN_LAYERS, None)):
        problems.append(f"flatten_layers: keras.layers.Layer.{FLATTEN_LAYERS} no longer exists")
    hook = getattr(keras.Model, SYMBOLIC_BUILD, None)
    parameters = tuple(inspect.signature(hook).parameters) if callable(hook) else None
    if parameters != SYMBOLIC_BUILD_PARAMETERS:
        found = f"has parameters {parameters}" if parameters else "no longer exists"
        problems.append(
            f"PrebuiltModel.{SYMBOLIC_BUILD}: keras.Model.{SYMBOLIC_BUILD} {found}, "
            f"the override expects {SYMBOLIC_BUILD_PARAMETERS}"
        )
    if problems:
        raise UserError(
            f"Keras {keras.__version__} does not match what efficientdet.keras_internals "
            f"overrides (written for Keras {WRITTEN_FOR}): {'; '.join(problems)}"
        )
