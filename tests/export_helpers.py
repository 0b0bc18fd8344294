"""A tiny training run to export: random weights made to give confident, distinct detections."""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from efficientdet import build_model
from efficientdet.cli import main
from efficientdet.config import get_config
from efficientdet.layout import RunFiles
from efficientdet.train.run import describe_run
from train_helpers import LABEL_MAP, shape_image, write_dataset

MODEL_NAME = "efficientdet-d0"
IMAGE_SIZE = 128
STEP = 7
CLASS_SPREAD, CLASS_BIAS, BOX_SPREAD = 1.0, -4.5, 0.3


def confident_model(seed):
    """A random d0 at IMAGE_SIZE whose detections are few, confident and well apart.

    Batch norms take the statistics of sample_images(8) (one training-mode pass with momentum
    0), so that inference-mode activations on those images do not vanish (other images may
    give weaker detections); the predictions are then rescaled so that class logits spread
    with std CLASS_SPREAD around CLASS_BIAS (a few anchors score above 0.5) and box deltas
    with std BOX_SPREAD (boxes move off their anchors).
    """
    keras.utils.set_random_seed(seed)
    model = build_model(MODEL_NAME, len(LABEL_MAP), IMAGE_SIZE)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    images = sample_images(8).astype(np.float32)
    model(images, training=True)
    class_outputs, box_outputs = model(images, training=False)
    for head, outputs, spread in (
        ("class", class_outputs, CLASS_SPREAD),
        ("box", box_outputs, BOX_SPREAD),
    ):
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
    confident model and whose raw `model` weights are plain random ones (no detection above
    the class prior). Returns the EMA model."""
    run = RunFiles(Path(model_dir))
    ema_model = confident_model(0)
    raw_model = build_model(MODEL_NAME, len(LABEL_MAP), IMAGE_SIZE)
    config = get_config(MODEL_NAME, image_size=IMAGE_SIZE)
    checkpoint = tf.train.Checkpoint(model=raw_model, ema_model=ema_model)
    manager = tf.train.CheckpointManager(
        checkpoint, run.checkpoints, max_to_keep=None, checkpoint_name="ckpt"
    )
    manager.save(checkpoint_number=STEP)
    description = describe_run(config, {}, LABEL_MAP)
    run.description.write_text(yaml.safe_dump(description, sort_keys=False))
    return ema_model


@dataclasses.dataclass(frozen=True)
class ExportedRun:
    run_dir: Path  # models/tiny: model.yaml, checkpoints/
    export_dir: Path  # models/tiny/export
    data_dir: Path  # tfrecords/ and label_map.yaml, as results/{dataset}/
    ema_model: keras.Model


_EXPORTED = []


def exported_run(tmp_path_factory):
    """The tiny run exported in every format (with `efficientdet export`), once per session."""
    if not _EXPORTED:
        root = tmp_path_factory.mktemp("exported")
        run_dir = root / "models" / "tiny"
        ema_model = write_tiny_run(run_dir)
        data_dir = write_dataset(root / "data", num_train=4, num_val=2)
        status = main(
            [
                "export",
                f"--checkpoint={run_dir}",
                f"--label_map={data_dir}/label_map.yaml",
                f"--calibration_file_pattern={data_dir}/tfrecords/train-*.tfrecord",
                "--calibration_images=4",
            ]
        )
        assert status == 0
        _EXPORTED.append(ExportedRun(run_dir, run_dir / "export", data_dir, ema_model))
    return _EXPORTED[0]


def box_iou(box, boxes):
    """IoU of one yxyx box with each of `boxes`."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - intersection
    # Degenerate (zero-area) boxes count as overlapping only their equals.
    same = np.all(np.abs(boxes - box) < 1e-3, axis=1)
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), same.astype(float))


def confident(detections, index, min_score):
    """Image `index` of batched detections: (boxes, scores, classes) scoring >= min_score."""
    count = int(detections["num_detections"][index])
    scores = detections["scores"][index][:count]
    keep = scores >= min_score
    boxes = detections["boxes"][index][:count]
    classes = detections["classes"][index][:count]
    return boxes[keep], scores[keep], classes[keep]


def assert_detections_match(reference, other, min_score, min_iou, score_tolerance):
    """Per image, each detection of `reference` scoring >= min_score + score_tolerance has a
    twin in `other`: same class, IoU >= min_iou, score within score_tolerance; and vice versa.
    The margin keeps detections whose score straddles min_score out of the comparison."""
    for first, second in ((reference, other), (other, reference)):
        for index in range(len(first["num_detections"])):
            boxes, scores, classes = confident(first, index, min_score + score_tolerance)
            other_boxes, other_scores, other_classes = confident(second, index, 0.0)
            for box, score, label_id in zip(boxes, scores, classes):
                twins = (
                    (other_classes == label_id)
                    & (box_iou(box, other_boxes) >= min_iou)
                    & (np.abs(other_scores - score) <= score_tolerance)
                )
                assert twins.any(), f"image {index}: no twin for {label_id} {score:.4f} {box}"


def count_confident(detections, min_score):
    return [
        len(confident(detections, index, min_score)[1])
        for index in range(len(detections["num_detections"]))
    ]
