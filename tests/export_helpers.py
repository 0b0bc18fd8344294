"""A tiny training run to export: random weights made to give confident, distinct detections."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from efficientdet import build_model
from efficientdet.config import get_config
from efficientdet.training_run import CHECKPOINTS, DESCRIPTION, describe_run
from train_helpers import LABEL_MAP, shape_image

MODEL_NAME = "efficientdet-d0"
IMAGE_SIZE = 128
STEP = 7


def confident_model(seed, images):
    """A random d0 at IMAGE_SIZE whose inference-mode activations do not vanish.

    Batch norms take the statistics of `images` (one training-mode pass with momentum 0), and
    the class and box predictions are scaled up, so that a few anchors score well above 0.5
    and boxes move away from their anchors.
    """
    keras.utils.set_random_seed(seed)
    model = build_model(MODEL_NAME, len(LABEL_MAP), IMAGE_SIZE)
    batch_norms = [layer for layer in model._flatten_layers()
                   if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.momentum = 0.0
    model(images.astype(np.float32), training=True)
    for prefix, scale, bias in (("class_net/class-predict", 40.0, -3.0),
                                ("box_net/box-predict", 6.0, None)):
        for variable in model.weights:
            if variable.path.startswith(prefix) and "pointwise_kernel" in variable.path:
                variable.assign(variable * scale)
            if bias is not None and variable.path == f"{prefix}/bias":
                variable.assign(tf.fill(variable.shape, bias))
    return model


def sample_images(count, seed=1, size=IMAGE_SIZE):
    rng = np.random.default_rng(seed)
    return np.stack([shape_image(rng, size)[0] for _ in range(count)])


def write_tiny_run(model_dir):
    """models/{run}/-like folder: model.yaml and checkpoints/ckpt-STEP whose `ema_model` is a
    confident model and whose raw `model` weights differ (another seed). Returns the EMA model."""
    model_dir = Path(model_dir)
    images = sample_images(4)
    ema_model = confident_model(0, images)
    raw_model = confident_model(1, images)
    config = get_config(MODEL_NAME, image_size=IMAGE_SIZE)
    checkpoint = tf.train.Checkpoint(model=raw_model, ema_model=ema_model)
    manager = tf.train.CheckpointManager(checkpoint, model_dir / CHECKPOINTS, max_to_keep=None,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=STEP)
    description = describe_run(config, {}, LABEL_MAP)
    (model_dir / DESCRIPTION).write_text(yaml.safe_dump(description, sort_keys=False))
    return ema_model
