"""Coming from google/automl: its hparams files, label maps and flags mean the same here."""

import math

import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import run_snakemake
from data_helpers import image_bytes, voc_xml, write_zip
from efficientdet import automl_hparams, build_model, cli, flags
from efficientdet.data.label_map import discover_label_map
from efficientdet.errors import UserError
from efficientdet.model.anchors import generate_anchors
from efficientdet.model.checkpoints import automl_variable_names
from efficientdet.train import train
from efficientdet.train.training_data import scan_records
from train_helpers import write_dataset

# The original's VOC fine-tuning example (its README), in its own words: num_classes counts
# the background, aspect_ratios in the float form of its current code, the predefined
# label map by name, nms_configs as a whole, and num_epochs in the file, not on the command
# line.
VOC_HPARAMS = """\
num_classes: 21
label_map: voc
var_freeze_expr: '(efficientnet|fpn_cells|resample_p6)'
moving_average_decay: 0.9999
aspect_ratios: [1.0, 2.0, 0.5]
nms_configs: {method: hard, iou_thresh: null, score_thresh: 0.0, sigma: null, pyfunc: false,
              max_nms_inputs: 0, max_output_size: 50}
map_freq: 5
num_epochs: 1
learning_rate: 0.02
lr_warmup_epoch: 0.0
jitter_min: 1.0
jitter_max: 1.0
"""
# COCO's 80 categories keep the ids of its 91-category list, 1..90 with these unused.
COCO_UNUSED_IDS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def test_predefined_label_maps(tmp_path):
    voc = automl_hparams.label_map_from("voc", "test")
    # The original's VOC ids are the classes in name order, as the data stage numbers a
    # complete VOC dataset without a label map.
    assert voc == discover_label_map(voc.values()) and len(voc) == 20
    coco = automl_hparams.label_map_from("coco", "test")
    assert set(coco) == set(range(1, 91)) - COCO_UNUSED_IDS
    assert (coco[1], coco[90]) == ("person", "toothbrush")
    assert automl_hparams.label_map_from("waymo", "test") == {
        1: "vehicle",
        2: "pedestrian",
        3: "cyclist",
    }
    path = tmp_path / "mine.yaml"
    path.write_text("{1: cat, 2: dog}\n")
    assert automl_hparams.label_map_from(str(path), "test") == {1: "cat", 2: "dog"}
    with pytest.raises(UserError, match="hparams.yaml label_map: label_map 'pascal' is neither"):
        automl_hparams.label_map_from("pascal", "hparams.yaml label_map")


def test_translate_keeps_meaning_or_refuses():
    translated = automl_hparams.translate(yaml.safe_load(VOC_HPARAMS), "efficientdet-d0")
    assert translated["label_map"][12] == "dog"
    # 0 and None are "the method's default" to the original.
    assert {
        k: v for k, v in translated.items() if k.startswith("nms") or k == "max_detections"
    } == {"nms_method": "hard", "max_detections": 50}
    assert "map_freq" not in translated
    assert automl_hparams.translate(
        {"name": "efficientdet-lite0", "mean_rgb": 127.0, "grid_mask": False},
        "efficientdet-lite0",
    ) == {"mean_rgb": [127.0, 127.0, 127.0]}  # one value for all channels, as the variant
    refused = [
        ({"grid_mask": True}, "grid_mask=True is not supported here"),
        ({"fpn_num_filters": 128}, "fpn_num_filters=128 would change the network"),
        ({"aspect_ratios": [1.0, 2.0]}, "would change the number of anchors"),
        ({"name": "efficientdet-d1"}, "name='efficientdet-d1' but the model is efficientdet-d0"),
        ({"nms_configs": {"pyfunc": True}}, "nms_configs.pyfunc=True is not supported"),
        ({"strategy": "gpus"}, "use --strategy"),
    ]
    for hparams, message in refused:
        with pytest.raises(UserError, match=message):
            automl_hparams.translate(hparams, "efficientdet-d0")


def test_float_aspect_ratios_are_the_original_sqrt_factors():
    floats = generate_anchors((128, 128), 3, 7, 3, [1.0, 2.0, 0.5], 4.0)
    root = math.sqrt(2.0)
    pairs = generate_anchors((128, 128), 3, 7, 3, [(1, 1), (root, 1 / root), (1 / root, root)], 4.0)
    np.testing.assert_allclose(floats.numpy(), pairs.numpy(), atol=1e-4)


def train_in_process(args):
    _, parser = cli.stage_parser("train")
    return train.train(flags.parse_args(parser, args))


def test_voc_hparams_file_trains_with_its_meaning(tmp_path):
    # Records as the original's create_pascal_tfrecord leaves them: no label_map.yaml beside.
    data = write_dataset(tmp_path / "data", num_train=2, num_val=2, sidecars=False)
    hparams = tmp_path / "voc_config.yaml"
    hparams.write_text(VOC_HPARAMS)
    model_dir = tmp_path / "model"
    summary = train_in_process(
        [
            "--mode=train",
            f"--train_file_pattern={data}/tfrecords/train-*.tfrecord",
            "--model_name=efficientdet-d0",
            "--image_size=128",
            f"--model_dir={model_dir}",
            "--batch_size=2",
            f"--hparams={hparams}",
            "--strategy=",
        ]
    )
    assert summary["epochs"] == 1  # num_epochs from the file

    description = yaml.safe_load((model_dir / "model.yaml").read_text())
    assert description["label_map"] == automl_hparams.VOC
    assert description["num_classes"] == 20  # the original's background output is not built
    assert description["config"]["aspect_ratios"] == [1.0, 2.0, 0.5]
    assert description["config"]["nms_method"] == "hard"
    assert description["config"]["max_detections"] == 50
    assert description["optimization"]["moving_average_decay"] == 0.9999

    # Frozen: every weight of the original's efficientnet-*, fpn_cells and resample_p6 scopes
    # is where it started, which the weight average (started at the initial weights) shows.
    trained = build_model("efficientdet-d0", 20, 128)
    averaged = build_model("efficientdet-d0", 20, 128)
    checkpoint = tf.train.latest_checkpoint(model_dir / "checkpoints")
    tf.train.Checkpoint(model=trained, ema_model=averaged).read(checkpoint).expect_partial()
    averaged_by_name = automl_variable_names(averaged)
    frozen_scopes = ("efficientnet-b0/", "fpn_cells/", "resample_p6/")
    moved = {}
    for name, variable in automl_variable_names(trained).items():
        if "moving_" in name:
            continue  # batch-norm statistics, not weights
        moved[name] = not np.array_equal(variable.numpy(), averaged_by_name[name].numpy())
    frozen = [name for name in moved if name.startswith(frozen_scopes)]
    heads = [name for name in moved if name.startswith(("class_net/", "box_net/"))]
    assert len(frozen) > 300 and not any(moved[name] for name in frozen)
    assert any(moved[name] for name in heads)


def test_hparams_label_map_must_match_the_dataset(tmp_path):
    data = write_dataset(tmp_path / "data", num_train=2, num_val=2)  # square, disc, triangle
    with pytest.raises(
        UserError,
        match=r"label_map.yaml: the dataset's label map is not the "
        r"hparams label_map: id 1: 'aeroplane' vs 'square'",
    ):
        train_in_process(
            [
                "--mode=train",
                f"--train_file_pattern={data}/tfrecords/train-*.tfrecord",
                "--image_size=128",
                f"--model_dir={tmp_path / 'model'}",
                "--batch_size=2",
                "--hparams=label_map=voc,num_classes=21",
            ]
        )
    with pytest.raises(UserError, match="unknown key.*learning_rat"):
        train_in_process(
            [
                f"--train_file_pattern={data}/tfrecords/train-*.tfrecord",
                "--mode=train",
                f"--model_dir={tmp_path / 'model'}",
                "--batch_size=2",
                "--image_size=128",
                "--hparams=num_classes=4,learning_rat=0.1",
            ]
        )


def voc_zip(path):
    entries = {}
    for index, name in enumerate(("dog", "person", "dog")):
        entries[f"VOC/JPEGImages/img{index}.jpg"] = image_bytes(seed=index)
        entries[f"VOC/Annotations/img{index}.xml"] = voc_xml([(name, 5, 5, 40, 30)])
    return write_zip(path, entries)


def test_workflow_reads_the_label_map_of_model_hparams(workdir):
    voc_zip(workdir / "resources" / "pets.zip")
    (workdir / "voc_config.yaml").write_text(VOC_HPARAMS)
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["dataset"].update(name="pets", url="resources/pets.zip")
    config["model"]["hparams"] = "voc_config.yaml"
    config_path.write_text(yaml.safe_dump(config))

    run_snakemake(workdir, "tfrecords")
    assert (
        yaml.safe_load((workdir / "results/pets/label_map.yaml").read_text()) == automl_hparams.VOC
    )
    records = sorted((workdir / "results/pets/tfrecords").glob("*.tfrecord"))
    assert scan_records([str(path) for path in records]).label_map == {12: "dog", 15: "person"}

    config["dataset"]["label_map"] = {1: "dog", 2: "person"}
    config_path.write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "tfrecords", check=False)
    assert result.returncode != 0
    assert "dataset.label_map and the label_map of model.hparams differ" in result.stderr
