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
CLASS_SPREAD, CLASS_BIAS, BOX_SPREAD = 1.5, -4.0, 0.3


def confident_model(seed):
    """A random d0 at IMAGE_SIZE whose detections are few, confident and well apart.

    Batch norms take the statistics of shape images (one training-mode pass with momentum 0),
    so that inference-mode activations do not vanish; the class and box predictions are then
    rescaled so that logits spread with std CLASS_SPREAD around CLASS_BIAS (a few anchors score
    above 0.5) and box deltas with std BOX_SPREAD (boxes move off their anchors).
    """
    keras.utils.set_random_seed(seed)
    model = build_model(MODEL_NAME, len(LABEL_MAP), IMAGE_SIZE)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(sample_images(8, seed=1).astype(np.float32), training=True)
    class_outputs, box_outputs = model(sample_images(8, seed=2).astype(np.float32), training=False)
    for head, outputs, spread in (("class", class_outputs, CLASS_SPREAD),
                                  ("box", box_outputs, BOX_SPREAD)):
        kernel = model.get_layer(f"{head}_net").predict.pointwise_kernel
        bias = model.get_layer(f"{head}_net").predict.bias
        std = float(np.std(np.concatenate([np.ravel(output) for output in outputs])))
        kernel.assign(kernel * (spread / std))
        bias.assign(tf.fill(bias.shape, CLASS_BIAS if head == "class" else 0.0))
    return model


def sample_images(count, seed=1, size=IMAGE_SIZE):
    rng = np.random.default_rng(seed)
    return np.stack([shape_image(rng, size)[0] for _ in range(count)])


def write_tiny_run(model_dir):
    """models/{run}/-like folder: model.yaml and checkpoints/ckpt-STEP whose `ema_model` is a
    confident model and whose raw `model` weights differ (another seed). Returns the EMA model."""
    model_dir = Path(model_dir)
    ema_model = confident_model(0)
    raw_model = confident_model(1)
    config = get_config(MODEL_NAME, image_size=IMAGE_SIZE)
    checkpoint = tf.train.Checkpoint(model=raw_model, ema_model=ema_model)
    manager = tf.train.CheckpointManager(checkpoint, model_dir / CHECKPOINTS, max_to_keep=None,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=STEP)
    description = describe_run(config, {}, LABEL_MAP)
    (model_dir / DESCRIPTION).write_text(yaml.safe_dump(description, sort_keys=False))
    return ema_model
