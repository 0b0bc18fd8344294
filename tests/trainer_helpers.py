"""A small d0 detector handed to a DetectionTrainer, for the tests of the layers it switches."""

import numpy as np
import tensorflow as tf

from efficientdet import build_model
from efficientdet.config import get_config
from efficientdet.keras_internals import flatten_layers
from efficientdet.train import optimization
from efficientdet.train.trainer import DetectionTrainer


def layers_after_the_trainer(select):
    """The layers `select` picks in a d0 at 64 px, taken before a DetectionTrainer is made with
    the detector; its outputs are checked to stay the same."""
    config = get_config("efficientdet-d0", image_size=64)
    detector = build_model("efficientdet-d0", num_classes=3, image_size=64)
    average = build_model("efficientdet-d0", num_classes=3, image_size=64)
    layers = [layer for layer in flatten_layers(detector) if select(layer)]
    images = tf.random.uniform((1, 64, 64, 3), 0, 255)
    before = detector(images, training=False)
    DetectionTrainer(detector, average, config, dict(optimization.DEFAULTS))
    after = detector(images, training=False)
    for want, got in zip(tf.nest.flatten(before), tf.nest.flatten(after)):
        np.testing.assert_array_equal(got, want)
    return layers
