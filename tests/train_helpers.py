"""Tiny detection datasets for the training tests: solid shapes on a plain background."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from efficientdet.data import tfrecord

LABEL_MAP = {1: "square", 2: "disc", 3: "triangle"}
COLOURS = {1: (220, 40, 40), 2: (40, 200, 40), 3: (40, 40, 220)}
BIN = Path(sys.executable).parent


def shape_image(rng, size=128, max_objects=2):
    """An RGB image with 1..max_objects shapes, its boxes (normalised yxyx) and label ids."""
    image = np.full((size, size, 3), 235, np.uint8)
    boxes, labels = [], []
    for _ in range(rng.integers(1, max_objects + 1)):
        label = int(rng.integers(1, 4))
        side = int(rng.integers(size // 4, size // 2))
        top, left = (int(v) for v in rng.integers(0, size - side, 2))
        colour = COLOURS[label]
        if label == 1:
            cv2.rectangle(image, (left, top), (left + side - 1, top + side - 1), colour, -1)
        elif label == 2:
            cv2.circle(image, (left + side // 2, top + side // 2), side // 2, colour, -1)
        else:
            points = np.array(
                [
                    [left + side // 2, top],
                    [left, top + side - 1],
                    [left + side - 1, top + side - 1],
                ],
                np.int32,
            )
            cv2.fillPoly(image, [points], colour)
        boxes.append((top / size, left / size, (top + side) / size, (left + side) / size))
        labels.append(label)
    return image, boxes, labels


def example(image, boxes, labels, source_id):
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    height, width = image.shape[:2]
    return tfrecord.encode_example(
        {
            tfrecord.ENCODED: [jpeg.tobytes()],
            tfrecord.FORMAT: [b"jpeg"],
            tfrecord.FILENAME: [f"{source_id}.jpg".encode()],
            tfrecord.SOURCE_ID: [str(source_id).encode()],
            tfrecord.HEIGHT: [height],
            tfrecord.WIDTH: [width],
            tfrecord.BBOX_YMIN: [box[0] for box in boxes],
            tfrecord.BBOX_XMIN: [box[1] for box in boxes],
            tfrecord.BBOX_YMAX: [box[2] for box in boxes],
            tfrecord.BBOX_XMAX: [box[3] for box in boxes],
            tfrecord.CLASS_LABEL: labels,
            tfrecord.CLASS_TEXT: [LABEL_MAP[label].encode() for label in labels],
            tfrecord.AREA: [(b[2] - b[0]) * (b[3] - b[1]) * height * width for b in boxes],
            tfrecord.DIFFICULT: [0] * len(labels),
            tfrecord.TRUNCATED: [0] * len(labels),
            tfrecord.IS_CROWD: [0] * len(labels),
        }
    )


def write_dataset(folder, num_train=8, num_val=4, seed=0, size=128, sidecars=True):
    """results/{dataset}/-like folder: tfrecords/{train,val}-00000-of-00001.tfrecord, plus
    label_map.yaml and stats/summary.yaml when `sidecars`. Returns the folder."""
    folder = Path(folder)
    (folder / "tfrecords").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    max_objects = 0
    for split, count in (("train", num_train), ("val", num_val)):
        records = []
        for index in range(count):
            image, boxes, labels = shape_image(rng, size)
            max_objects = max(max_objects, len(labels))
            records.append(example(image, boxes, labels, index + 1))
        tfrecord.write_records(folder / "tfrecords" / f"{split}-00000-of-00001.tfrecord", records)
    if sidecars:
        (folder / "label_map.yaml").write_text(yaml.safe_dump(LABEL_MAP))
        (folder / "stats").mkdir()
        (folder / "stats" / "summary.yaml").write_text(
            yaml.safe_dump({"max_objects_per_image": max_objects})
        )
    return folder


def train_command(data, model_dir, *extra, epochs=2, examples=4, batch_size=2):
    """`efficientdet train` flags for a tiny, fast run on `data` (from write_dataset)."""
    return [
        str(BIN / "efficientdet"),
        "train",
        f"--train_file_pattern={data}/tfrecords/train-*.tfrecord",
        f"--val_file_pattern={data}/tfrecords/val-*.tfrecord",
        "--model_name=efficientdet-d0",
        "--image_size=128",
        f"--model_dir={model_dir}",
        f"--batch_size={batch_size}",
        f"--num_epochs={epochs}",
        f"--num_examples_per_epoch={examples}",
        "--hparams=learning_rate=0.02,lr_warmup_epoch=0,jitter_min=1.0,jitter_max=1.0",
        *extra,
    ]


def quiet_env(**extra):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def run_train(command, timeout=300, env=None):
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env or quiet_env()
    )
