"""`efficientdet export` on a tiny run: the files, their signatures, and that every format
detects the same objects as the checkpoint."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml
from ai_edge_litert.interpreter import Interpreter

from efficientdet.cli import main
from efficientdet.config import get_config
from efficientdet.export.export import evaluation_metrics, select_checkpoint
from efficientdet.export.serving import OUTPUT_NAMES, Detector
from efficientdet.infer.backends import load_backend
from export_helpers import (
    IMAGE_SIZE,
    MODEL_NAME,
    STEP,
    assert_detections_match,
    count_confident,
    exported_run,
    sample_images,
)
from train_helpers import LABEL_MAP

MIN_SCORE = 0.25
# Documented tolerances (config/README.md): float32 formats agree with the checkpoint to
# IoU 0.99 and 1e-3 in score; float16 weights to IoU 0.95 and 0.015 (on this untrained network
# their rounding moves scores by up to 0.008-0.011, depending on the random weights).
FLOAT32 = dict(min_iou=0.99, score_tolerance=1e-3)
FLOAT16 = dict(min_iou=0.95, score_tolerance=0.015)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    return exported_run(tmp_path_factory)


@pytest.fixture(scope="session")
def reference(exported):
    """The checkpoint's detections on the test images."""
    return load_backend(exported.run_dir).detect(sample_images(4))


def test_export_folder_holds_every_format_and_metadata(exported):
    folder = exported.export_dir
    expected = {
        "saved_model",
        "frozen_model.pb",
        "frozen_model.json",
        "model_fp32.tflite",
        "model_fp16.tflite",
        "model_int8.tflite",
        "model.onnx",
        "label_map.yaml",
        "metadata.json",
    }
    assert {path.name for path in folder.iterdir()} == expected
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".export")]

    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["model_name"] == MODEL_NAME
    assert metadata["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    assert metadata["label_map"] == {str(key): name for key, name in LABEL_MAP.items()}
    assert metadata["run"] == "tiny"
    assert metadata["step"] == STEP
    assert metadata["checkpoint"].endswith(f"checkpoints/ckpt-{STEP}")
    assert metadata["metrics"] is None  # no evaluation of the tiny run
    assert {"tensorflow", "keras", "tf2onnx", "python"} <= set(metadata["versions"])
    assert set(metadata["files"]) == expected - {"metadata.json"}

    names = json.loads((folder / "frozen_model.json").read_text())
    assert names == {
        "inputs": {"images": "images:0"},
        "outputs": {name: f"{name}:0" for name in OUTPUT_NAMES},
    }
    asset = folder / "saved_model" / "assets" / "label_map.yaml"
    assert yaml.safe_load(asset.read_text()) == LABEL_MAP


def test_saved_model_serves_uint8_images_of_any_size_and_batch(exported, reference):
    serving = tf.saved_model.load(str(exported.export_dir / "saved_model")).signatures[
        "serving_default"
    ]
    spec = serving.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]

    wide = serving(images=tf.zeros([3, 90, 200, 3], tf.uint8))
    assert set(wide) == set(OUTPUT_NAMES)
    assert wide["boxes"].shape == (3, 100, 4) and wide["scores"].shape == (3, 100)
    assert wide["classes"].shape == (3, 100) and wide["num_detections"].shape == (3,)
    boxes = wide["boxes"].numpy()
    assert boxes.min() >= 0 and boxes[..., [0, 2]].max() <= 90 and boxes[..., [1, 3]].max() <= 200

    # Twice the size, pixel for pixel: resizing back is exact, so the detections are the
    # checkpoint's on the originals, in the input's (doubled) pixels.
    doubled = np.repeat(np.repeat(sample_images(4), 2, axis=1), 2, axis=2)
    found = {key: value.numpy() for key, value in serving(images=tf.constant(doubled)).items()}
    expected = dict(reference, boxes=reference["boxes"] * 2)
    assert_detections_match(expected, found, MIN_SCORE, **FLOAT32)
    for index, count in enumerate(found["num_detections"]):
        assert set(found["classes"][index, :count]) <= set(LABEL_MAP)


def test_export_uses_the_ema_weights(exported, reference):
    """The checkpoint's raw weights detect nothing; its EMA weights (exported) do."""
    assert sum(count_confident(reference, MIN_SCORE)) >= 10
    detector = Detector(
        exported.ema_model, get_config(MODEL_NAME, image_size=IMAGE_SIZE), len(LABEL_MAP)
    )
    expected = {key: value.numpy() for key, value in detector.detect(sample_images(4)).items()}
    assert_detections_match(expected, reference, MIN_SCORE, **FLOAT32)


@pytest.mark.parametrize(
    "name", ["saved_model", "frozen_model.pb", "model_fp32.tflite", "model.onnx"]
)
def test_float32_formats_detect_what_the_checkpoint_detects(exported, reference, name):
    found = load_backend(exported.export_dir / name).detect(sample_images(4))
    assert count_confident(found, MIN_SCORE) == count_confident(reference, MIN_SCORE)
    assert_detections_match(reference, found, MIN_SCORE, **FLOAT32)


def test_saved_model_carries_its_weights_as_constants(exported):
    """So that TensorFlow folds batch norm into the convolutions when it loads the model."""
    serving = tf.saved_model.load(str(exported.export_dir / "saved_model")).signatures[
        "serving_default"
    ]
    graph_def = serving.graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    ops.update(node.op for function in graph_def.library.function for node in function.node_def)
    assert {"Conv2D", "DepthwiseConv2dNative", "NonMaxSuppressionV5"} <= ops
    assert not ops & {"VarHandleOp", "ReadVariableOp"}


def test_frozen_graph_has_one_input(exported):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((exported.export_dir / "frozen_model.pb").read_bytes())
    assert [node.name for node in graph_def.node if node.op == "Placeholder"] == ["images"]


def test_float16_tflite_within_tolerance(exported, reference):
    found = load_backend(exported.export_dir / "model_fp16.tflite").detect(sample_images(4))
    assert_detections_match(reference, found, MIN_SCORE, **FLOAT16)


def test_int8_tflite_is_integer_and_tracks_float(exported):
    """On this random network (no training to make it robust) int8 keeps the network's
    outputs correlated with float32 (r >= 0.85) and scores within 0.01 on average."""
    folder = exported.export_dir
    interpreter = Interpreter(model_path=str(folder / "model_int8.tflite"))
    weights = [detail for detail in interpreter.get_tensor_details() if detail["dtype"] == np.int8]
    assert len(weights) > 100

    images = sample_images(4)
    float_outputs = load_backend(folder / "model_fp32.tflite").run_network(images)
    int8_outputs = load_backend(folder / "model_int8.tflite").run_network(images)
    for name in ("class_logits", "box_deltas"):
        correlation = np.corrcoef(float_outputs[name].ravel(), int8_outputs[name].ravel())[0, 1]
        assert correlation >= 0.85, name
    scores = [
        1 / (1 + np.exp(-outputs["class_logits"])) for outputs in (float_outputs, int8_outputs)
    ]
    assert np.abs(scores[0] - scores[1]).mean() <= 0.01


@pytest.mark.parametrize("quantization", ["fp32", "fp16", "int8"])
def test_tflite_runs_on_builtin_ops_only(exported, quantization):
    interpreter = Interpreter(model_path=str(exported.export_dir / f"model_{quantization}.tflite"))
    operators = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not [name for name in operators if name.startswith("Flex") or name == "CUSTOM"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= operators


def _export(*args):
    return main(["export", *map(str, args)])


def test_best_checkpoint_is_chosen_by_coco_ap(tmp_path, caplog):
    checkpoints = tmp_path / "models" / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    for step in (10, 20, 30):
        (checkpoints / f"ckpt-{step}.index").touch()
    # ckpt-40 scored best but no longer exists; ckpt-30 is not evaluated yet.
    for step, ap in ((10, 0.4), (20, 0.3), (40, 0.9)):
        (eval_dir / f"ckpt-{step}.json").write_text(json.dumps({"metrics": {"AP": ap}}))

    assert select_checkpoint(checkpoints, "best", eval_dir) == checkpoints / "ckpt-10"
    assert select_checkpoint(checkpoints, "last", eval_dir) == checkpoints / "ckpt-30"
    assert evaluation_metrics(eval_dir, 10) == {"AP": 0.4}
    assert evaluation_metrics(eval_dir, 30) is None

    shutil.rmtree(eval_dir)
    assert (
        _export(f"--checkpoint={checkpoints.parent}", "--select=best", f"--eval_dir={eval_dir}")
        == 1
    )
    assert "no COCO evaluation of any checkpoint" in caplog.text
    assert not (checkpoints.parent / "export").exists()


def test_bad_checkpoints_and_label_maps_leave_no_export(exported, tmp_path, caplog):
    output = tmp_path / "export"
    assert _export(f"--checkpoint={tmp_path / 'missing' / 'ckpt-3'}", f"--output_dir={output}") == 1
    assert "ckpt-3: no such checkpoint" in caplog.text

    run_dir = tmp_path / "models" / "corrupt"
    shutil.copytree(exported.run_dir, run_dir, ignore=shutil.ignore_patterns("export"))
    data = run_dir / "checkpoints" / f"ckpt-{STEP}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    assert _export(f"--checkpoint={run_dir}", "--formats", "frozen_graph") == 1
    assert not (run_dir / "export").exists()
    assert f"ckpt-{STEP}: cannot read this checkpoint" in caplog.text

    other_labels = tmp_path / "label_map.yaml"
    other_labels.write_text(yaml.safe_dump({1: "square", 2: "disc", 3: "star"}))
    assert (
        _export(
            f"--checkpoint={exported.run_dir}",
            f"--label_map={other_labels}",
            "--formats",
            "frozen_graph",
            f"--output_dir={output}",
        )
        == 1
    )
    assert "label map does not match" in caplog.text and "'triangle' vs 'star'" in caplog.text
    assert not output.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".export")]
