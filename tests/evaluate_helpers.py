"""Tiny validation splits and training-like run folders for the evaluation tests."""

import json

import numpy as np
import tensorflow as tf
import yaml

from efficientdet import build_model
from efficientdet.config import get_config
from efficientdet.data import tfrecord
from efficientdet.train.run import describe_run
from train_helpers import LABEL_MAP, example, shape_image

IMAGE_SIZE = 128


def write_val_split(folder, num_images, size=IMAGE_SIZE, extra_width=0):
    """results/{dataset}/-like folder: one val shard, its COCO ground truth and label map.

    Images are `size` high and `size + extra_width` wide (a plain strip on the right).
    """
    rng = np.random.default_rng(3)
    width = size + extra_width
    records, images, annotations = [], [], []
    for source_id in range(1, num_images + 1):
        image, boxes, labels = shape_image(rng, size)
        image = np.pad(image, ((0, 0), (0, extra_width), (0, 0)), constant_values=235)
        boxes = [
            (ymin, xmin * size / width, ymax, xmax * size / width)
            for ymin, xmin, ymax, xmax in boxes
        ]
        records.append(example(image, boxes, labels, source_id))
        images.append(
            {"id": source_id, "width": width, "height": size, "file_name": f"{source_id}.jpg"}
        )
        for (ymin, xmin, ymax, xmax), label in zip(boxes, labels):
            box = [xmin * width, ymin * size, (xmax - xmin) * width, (ymax - ymin) * size]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": source_id,
                    "category_id": label,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                    "difficult": 0,
                }
            )
    (folder / "tfrecords").mkdir(parents=True)
    tfrecord.write_records(folder / "tfrecords" / "val-00000-of-00001.tfrecord", records)
    (folder / "val_coco.json").write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": i, "name": name} for i, name in LABEL_MAP.items()],
            }
        )
    )
    (folder / "label_map.yaml").write_text(yaml.safe_dump(LABEL_MAP))
    return folder


class FakeRun:
    """models/{run}/ as training leaves it: model.yaml and checkpoints/ckpt-{step} holding
    `model`, `ema_model` and `epoch`, the last `keep` kept, without training.

    The raw weights detect something everywhere; the EMA weights' class bias of -30 detects
    nothing, which tells which copy evaluation used.
    """

    def __init__(
        self, model_dir, label_map=LABEL_MAP, image_size=IMAGE_SIZE, keep=3, name="efficientdet-d0"
    ):
        config = get_config(name, image_size=image_size)
        trained = build_model(config.name, max(label_map), config.image_size)
        average = build_model(config.name, max(label_map), config.image_size)
        average.set_weights(trained.get_weights())
        bias = average.get_layer("class_net").predict.bias
        bias.assign(tf.fill(bias.shape, -30.0))
        self.model_dir = model_dir
        self.epoch = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(model=trained, ema_model=average, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(
            checkpoint, model_dir / "checkpoints", max_to_keep=keep, checkpoint_name="ckpt"
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "model.yaml").write_text(
            yaml.safe_dump(describe_run(config, {}, label_map), sort_keys=False)
        )

    def save(self, step):
        """Writes checkpoints/ckpt-{step}, dropping the oldest beyond `keep`; returns its path."""
        self.epoch.assign_add(1)
        return self.manager.save(checkpoint_number=step)
