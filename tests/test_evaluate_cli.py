"""`efficientdet evaluate` on a tiny d0 checkpoint written as training writes them."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import run_cli
from efficientdet import build_model
from efficientdet.config import get_config
from efficientdet.data import tfrecord
from efficientdet.training_run import describe_run
from train_helpers import LABEL_MAP, example, shape_image

IMAGE_SIZE = 128
NUM_VAL = 5
STEP = 7


def write_val_split(folder, num_images=NUM_VAL, size=IMAGE_SIZE):
    """results/{dataset}/-like folder: one val shard and its COCO ground truth."""
    rng = np.random.default_rng(3)
    records, images, annotations = [], [], []
    for source_id in range(1, num_images + 1):
        image, boxes, labels = shape_image(rng, size)
        records.append(example(image, boxes, labels, source_id))
        images.append({"id": source_id, "width": size, "height": size,
                       "file_name": f"{source_id}.jpg"})
        for (ymin, xmin, ymax, xmax), label in zip(boxes, labels):
            box = [xmin * size, ymin * size, (xmax - xmin) * size, (ymax - ymin) * size]
            annotations.append({"id": len(annotations) + 1, "image_id": source_id,
                                "category_id": label, "bbox": box, "area": box[2] * box[3],
                                "iscrowd": 0, "difficult": 0})
    (folder / "tfrecords").mkdir(parents=True)
    tfrecord.write_records(folder / "tfrecords" / "val-00000-of-00001.tfrecord", records)
    (folder / "val_coco.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": i, "name": name} for i, name in LABEL_MAP.items()],
    }))
    (folder / "label_map.yaml").write_text(yaml.safe_dump(LABEL_MAP))
    return folder


def write_run(model_dir, label_map=LABEL_MAP, step=STEP):
    """A training-like run folder: checkpoints/ckpt-{step} and model.yaml.

    The raw weights detect something everywhere; the EMA weights' class bias of -30 detects
    nothing, which tells which copy evaluation used.
    """
    config = get_config("efficientdet-d0", image_size=IMAGE_SIZE)
    trained = build_model(config.name, max(label_map), config.image_size)
    average = build_model(config.name, max(label_map), config.image_size)
    average.set_weights(trained.get_weights())
    bias = average.get_layer("class_net").predict.bias
    bias.assign(tf.fill(bias.shape, -30.0))
    checkpoint = tf.train.Checkpoint(model=trained, ema_model=average,
                                     epoch=tf.Variable(1, dtype=tf.int64))
    manager = tf.train.CheckpointManager(checkpoint, model_dir / "checkpoints", max_to_keep=3,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=step)
    (model_dir / "model.yaml").write_text(
        yaml.safe_dump(describe_run(config, {}, label_map), sort_keys=False))
    return model_dir


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_val_split(root / "results" / "shapes")
    run = write_run(root / "models" / "run")
    return root, data, run


def evaluate(data, *extra, check=True):
    return run_cli("evaluate", f"--val_file_pattern={data}/tfrecords/val-*.tfrecord",
                   "--batch_size=2", *extra, check=check)


def test_evaluate_writes_metrics_and_plot(project, tmp_path):
    """Flags as the original tool takes them, from a params file: --model_dir picks the
    latest checkpoint, --eval_samples limits the images."""
    root, data, run = project
    output = root / "results" / "run" / "eval" / f"ckpt-{STEP}.json"
    params = tmp_path / "params.config"
    params.write_text(f"--model_dir={run}\n--eval_samples={NUM_VAL - 1}\n# a comment\n")
    evaluate(data, f"@{params}", f"--output={output}", f"--tensorboard_dir={run}/logs/validation")
    result = json.loads(output.read_text())
    assert result["checkpoint"] == f"{run}/checkpoints/ckpt-{STEP}" and result["step"] == STEP
    assert result["num_images"] == NUM_VAL - 1 and result["max_samples"] == NUM_VAL - 1
    assert result["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    assert result["ground_truth"] == str(data / "val_coco.json")
    metrics = result["metrics"]
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                 "ARm", "ARl", "VOC_AP50"):
        assert name in metrics and (metrics[name] is None or 0.0 <= metrics[name] <= 1.0)
    assert [(row["id"], row["name"]) for row in result["per_class"]] == list(LABEL_MAP.items())
    assert "all-point" in result["voc_ap_method"]
    # The EMA weights (which detect nothing) were evaluated, not the raw ones.
    assert result["num_detections"] == 0 and metrics["AP"] == 0.0
    assert cv2.imread(str(output.with_suffix(".png"))) is not None
    assert list((run / "logs" / "validation").glob("events.out.tfevents.*"))


def test_evaluate_errors(project, tmp_path):
    root, data, run = project
    missing = evaluate(data, f"--checkpoint={run}/checkpoints/ckpt-999", check=False)
    assert missing.returncode == 1 and "ckpt-999: checkpoint not found" in missing.stderr

    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoints").symlink_to(run / "checkpoints")
    renamed = {1: "square", 2: "circle", 3: "triangle"}
    (other / "model.yaml").write_text(yaml.safe_dump(
        {**yaml.safe_load((run / "model.yaml").read_text()), "label_map": renamed}))
    mismatch = evaluate(data, f"--model_dir={other}", check=False)
    assert mismatch.returncode == 1
    assert "label map mismatch" in mismatch.stderr and "id 2: model 'circle'" in mismatch.stderr

    empty = tmp_path / "empty"
    (empty / "tfrecords").mkdir(parents=True)
    (empty / "tfrecords" / "val-00000-of-00001.tfrecord").write_bytes(b"")
    (empty / "val_coco.json").write_text((data / "val_coco.json").read_text())
    result = evaluate(empty, f"--model_dir={run}", check=False)
    assert result.returncode == 1 and "validation split is empty" in result.stderr
    assert not list(tmp_path.rglob("*.json.*"))
