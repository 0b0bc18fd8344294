"""`efficientdet evaluate_checkpoint` on a tiny d0 checkpoint written as training writes them."""

import json

import cv2
import pytest
import tensorflow as tf
import yaml

from conftest import REFERENCE, run_cli
from efficientdet import cli
from efficientdet.config import get_config
from efficientdet.evaluate.coco import METRIC_NAMES, load_ground_truth
from efficientdet.evaluate.evaluate_checkpoint import detect, evaluation_report
from efficientdet.export.serving import model_anchors
from efficientdet.model.anchors import AnchorLabeler, feature_sizes
from evaluate_helpers import IMAGE_SIZE, FakeRun, write_val_split
from train_helpers import LABEL_MAP

NUM_VAL = 5
STEP = 7


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_val_split(root / "results" / "shapes", NUM_VAL)
    run = root / "models" / "run"
    FakeRun(run).save(STEP)
    return root, data, run


def evaluate(data, *extra, check=True):
    return run_cli(
        "evaluate_checkpoint",
        f"--val_file_pattern={data}/tfrecords/val-*.tfrecord",
        "--batch_size=2",
        *extra,
        check=check,
    )


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
    for name in (*METRIC_NAMES, "VOC_AP50", "VOC07_AP50"):
        assert name in metrics and (metrics[name] is None or 0.0 <= metrics[name] <= 1.0)
    assert [(row["id"], row["name"]) for row in result["per_class"]] == list(LABEL_MAP.items())
    assert "all-point" in result["voc_ap_methods"]["VOC_AP50"]
    assert "11-point" in result["voc_ap_methods"]["VOC07_AP50"]
    # The EMA weights (which detect nothing) were evaluated, not the raw ones.
    assert result["num_detections"] == 0 and metrics["AP"] == 0.0
    assert cv2.imread(str(output.with_suffix(".png"))) is not None
    assert list((run / "logs" / "validation").glob("events.out.tfevents.*"))


def evaluate_in_process(data, *extra):
    """(exit status, messages) of `efficientdet evaluate_checkpoint` run in this process
    (TensorFlow is imported already, so each error case costs no start-up)."""
    return cli.main(
        [
            "evaluate_checkpoint",
            f"--val_file_pattern={data}/tfrecords/val-*.tfrecord",
            "--batch_size=2",
            *extra,
        ]
    )


def test_evaluate_errors(project, tmp_path, caplog):
    root, data, run = project
    assert evaluate_in_process(data, f"--checkpoint={run}/checkpoints/ckpt-999") == 1
    assert "ckpt-999: no such checkpoint" in caplog.text

    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoints").symlink_to(run / "checkpoints")
    renamed = {1: "square", 2: "circle", 3: "triangle"}
    (other / "model.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((run / "model.yaml").read_text()), "label_map": renamed})
    )
    caplog.clear()
    assert evaluate_in_process(data, f"--model_dir={other}") == 1
    assert "label map mismatch" in caplog.text and "id 2: model 'circle'" in caplog.text

    official = REFERENCE / "automl-efficientdet-d0"
    if official.exists():  # the official-layout checkpoint in ../shared/reference
        caplog.clear()
        assert evaluate_in_process(data, f"--checkpoint={official}") == 1
        assert "label map mismatch: the checkpoint predicts 90 classes" in caplog.text

    empty = tmp_path / "empty"
    (empty / "tfrecords").mkdir(parents=True)
    (empty / "tfrecords" / "val-00000-of-00001.tfrecord").write_bytes(b"")
    (empty / "val_coco.json").write_text((data / "val_coco.json").read_text())
    caplog.clear()
    assert evaluate_in_process(empty, f"--model_dir={run}") == 1
    assert "validation split is empty" in caplog.text
    assert not (run / "eval").exists() and not (other / "eval").exists()


class OracleNetwork:
    """Stands in for the network: head outputs that encode the ground truth of the next images
    (records in order), as the anchor labeler assigns it, with confident logits."""

    def __init__(self, config, ground_truth, num_classes):
        anchors = model_anchors(config)
        labeler = AnchorLabeler(anchors, num_classes)
        model_height, model_width = config.image_size
        class_logits, box_deltas = [], []
        for image in sorted(ground_truth.dataset["images"], key=lambda image: image["id"]):
            scale = max(image["height"] / model_height, image["width"] / model_width)
            annotations = ground_truth.imgToAnns[image["id"]]
            boxes = [
                [y / scale, x / scale, (y + h) / scale, (x + w) / scale]
                for x, y, w, h in (a["bbox"] for a in annotations)
            ]
            targets, deltas, _ = labeler.label(boxes, [a["category_id"] for a in annotations])
            class_logits.append(tf.one_hot(targets, num_classes) * 20.0 - 10.0)
            box_deltas.append(deltas)
        self.levels = self._split_levels(tf.stack(class_logits), tf.stack(box_deltas), config)
        self.next_image = tf.Variable(0)

    @staticmethod
    def _split_levels(class_logits, box_deltas, config):
        sizes = feature_sizes(config.image_size, config.max_level)
        levels, start = [], 0
        for height, width in sizes[config.min_level :]:
            count = height * width * config.num_anchors
            levels.append(
                (
                    tf.reshape(
                        class_logits[:, start : start + count],
                        [-1, height, width, count // height // width * class_logits.shape[-1]],
                    ),
                    tf.reshape(
                        box_deltas[:, start : start + count],
                        [-1, height, width, count // height // width * 4],
                    ),
                )
            )
            start += count
        return levels

    def __call__(self, images, training=False):
        batch = tf.range(self.next_image, self.next_image + tf.shape(images)[0])
        self.next_image.assign_add(tf.shape(images)[0])
        return (
            [tf.gather(logits, batch) for logits, _ in self.levels],
            [tf.gather(deltas, batch) for _, deltas in self.levels],
        )


def test_perfect_network_outputs_score_one(tmp_path):
    """Boxes go back to original pixels of non-square images (scale 1.5 here), class channel
    c becomes label id c + 1, source ids become image ids: a network that outputs the ground
    truth scores AP 1."""
    data = write_val_split(tmp_path, 3, size=IMAGE_SIZE, extra_width=IMAGE_SIZE // 2)
    config = get_config("efficientdet-d0", image_size=IMAGE_SIZE)
    ground_truth = load_ground_truth(data / "val_coco.json")
    network = OracleNetwork(config, ground_truth, num_classes=max(LABEL_MAP))
    files = [str(data / "tfrecords" / "val-00000-of-00001.tfrecord")]
    detections, image_ids = detect(network, config, files, batch_size=2)
    assert image_ids == [1, 2, 3]
    report = evaluation_report(ground_truth, detections, image_ids)
    assert report["metrics"]["AP"] == pytest.approx(1.0, abs=1e-3)
    assert report["metrics"]["VOC_AP50"] == pytest.approx(1.0)
    assert report["metrics"]["VOC07_AP50"] == pytest.approx(1.0)
    assert {row["name"]: row["AP50"] for row in report["per_class"] if row["num_ground_truth"]} == {
        name: pytest.approx(1.0)
        for label_id, name in LABEL_MAP.items()
        if any(a["category_id"] == label_id for a in ground_truth.dataset["annotations"])
    }
