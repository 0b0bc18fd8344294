"""The EfficientDet network: variant table, parameter counts against google/automl, output
layout, non-square sizes, mixed precision."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE
from efficientdet import build_model
from efficientdet.config import MODEL_NAMES, get_config, parse_image_size
from efficientdet.errors import UserError
from efficientdet.model.backbone import (
    keras_efficientnet,
    pad_within_strided_convolutions,
    stage_outputs,
)
from efficientdet.model.bifpn import bifpn_nodes, upsample_nearest

PARAM_COUNTS = REFERENCE / "param_counts.json"
DEFAULT_RUN_VARIANTS = ("efficientdet-d0", "efficientdet-d1", "efficientdet-lite0")


def test_variant_table_holds_the_fifteen_models():
    assert len(MODEL_NAMES) == 15
    d7x = get_config("efficientdet-d7x")
    assert (d7x.backbone, d7x.image_size, d7x.max_level, d7x.fpn_weight_method) == (
        "efficientnet-b7",
        (1536, 1536),
        8,
        "sum",
    )
    lite3x = get_config("efficientdet-lite3x")
    assert (lite3x.backbone, lite3x.image_size, lite3x.fpn_num_filters, lite3x.act_type) == (
        "efficientnet-lite3",
        (640, 640),
        200,
        "relu6",
    )
    assert lite3x.mean_rgb == (127.0, 127.0, 127.0)
    assert get_config("efficientdet-d0").mean_rgb == pytest.approx((123.675, 116.28, 103.53))


def test_config_carries_anchor_and_training_defaults():
    config = get_config("efficientdet-d0")
    assert (config.min_level, config.max_level, config.num_scales) == (3, 7, 3)
    assert config.aspect_ratios == ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    assert config.num_anchors == 9
    assert (config.learning_rate, config.weight_decay, config.alpha, config.gamma) == (
        0.08,
        4e-5,
        0.25,
        1.5,
    )
    assert (config.delta, config.box_loss_weight, config.max_detections) == (0.1, 50.0, 100)
    overridden = get_config("efficientdet-d0", learning_rate=0.01, image_size=None)
    assert (overridden.learning_rate, overridden.image_size) == (0.01, (512, 512))


def test_image_size_accepts_int_wxh_and_pairs():
    assert parse_image_size(512) == (512, 512)
    assert parse_image_size("640x384") == (384, 640)
    assert parse_image_size("448") == (448, 448)
    assert parse_image_size((384, 640)) == (384, 640)
    assert get_config("efficientdet-lite0", image_size="512x384").image_size == (384, 512)
    for bad in ("640by384", "16x16", 3.5):
        with pytest.raises(UserError, match="image_size"):
            parse_image_size(bad)


def test_unknown_variant_or_key_is_a_user_error():
    with pytest.raises(UserError, match="efficientdet-d9"):
        get_config("efficientdet-d9")
    with pytest.raises(UserError, match="fpn_width"):
        get_config("efficientdet-d0", fpn_width=3)


def test_bifpn_graph_is_automls():
    assert bifpn_nodes(3, 7) == [
        (6, [3, 4]),
        (5, [2, 5]),
        (4, [1, 6]),
        (3, [0, 7]),
        (4, [1, 7, 8]),
        (5, [2, 6, 9]),
        (6, [3, 5, 10]),
        (7, [4, 11]),
    ]


@pytest.mark.parametrize("target", [(14, 10), (13, 9), (7, 11)])
def test_upsampling_matches_tf1_nearest_neighbor(target):
    features = np.random.default_rng(0).normal(size=(2, 7, 5, 3)).astype("float32")
    expected = tf.compat.v1.image.resize_nearest_neighbor(features, target)
    np.testing.assert_array_equal(upsample_nearest(features, target), expected)


def weight_counts(model):
    return {
        "total": sum(int(np.prod(weight.shape)) for weight in model.weights),
        "trainable": sum(int(np.prod(weight.shape)) for weight in model.trainable_weights),
        "variables": len(model.weights),
    }


def reference_counts(name):
    if not PARAM_COUNTS.exists():
        pytest.skip(f"{PARAM_COUNTS} not present")
    return json.loads(PARAM_COUNTS.read_text())["models"][name]


@pytest.mark.parametrize("name", DEFAULT_RUN_VARIANTS)
def test_parameter_counts_equal_automls(name):
    assert weight_counts(build_model(name, num_classes=90)) == reference_counts(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in DEFAULT_RUN_VARIANTS])
def test_parameter_counts_equal_automls_all_variants(name):
    assert weight_counts(build_model(name, num_classes=90)) == reference_counts(name)


def test_outputs_are_per_level_anchor_major_float32():
    model = build_model("efficientdet-d0", num_classes=3, image_size=128)
    images = np.random.default_rng(1).uniform(0, 255, (2, 128, 128, 3)).astype("float32")
    class_outputs, box_outputs = model(images)
    sizes = [128 // 2**level for level in range(3, 8)]
    assert [tuple(t.shape) for t in class_outputs] == [(2, s, s, 9 * 3) for s in sizes]
    assert [tuple(t.shape) for t in box_outputs] == [(2, s, s, 9 * 4) for s in sizes]
    assert all(t.dtype == "float32" for t in class_outputs + box_outputs)
    class_bias = model.get_layer("class_net").predict.bias.numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-class_bias)), 0.01, rtol=1e-5)


@pytest.mark.parametrize(
    "image_size, p3_size, p7_size",
    [
        ("256x128", (16, 32), (1, 2)),
        ((100, 150), (13, 19), (1, 2)),
    ],
)
def test_non_square_sizes(image_size, p3_size, p7_size):
    model = build_model("efficientdet-lite0", num_classes=2, image_size=image_size)
    height, width = parse_image_size(image_size)
    assert model.input_shape == (None, height, width, 3)
    class_outputs, box_outputs = model(np.full((1, height, width, 3), 128.0, "float32"))
    assert tuple(class_outputs[0].shape[1:3]) == p3_size
    assert tuple(box_outputs[-1].shape[1:3]) == p7_size


@pytest.mark.parametrize("image_size", [(256, 256), (250, 330)])
def test_strided_convolutions_pad_as_keras_padded_them(image_size):
    """keras' EfficientNet pads before each strided convolution; the backbone lets each such
    convolution pad by itself instead ('same'), with the same outputs, odd sides included."""
    classifier = keras_efficientnet("efficientnet-b0", image_size)
    stages = keras.Model(classifier.get_layer("stem_conv_pad").input, stage_outputs(classifier))
    images = np.random.default_rng(0).normal(size=(1, *image_size, 3)).astype("float32")
    as_keras_built = [np.asarray(stage) for stage in stages(images)]

    pad_within_strided_convolutions(classifier)
    pads = [layer for layer in classifier.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    assert len(pads) == 5 and all(pad.padding == ((0, 0), (0, 0)) for pad in pads)
    convolutions = [classifier.get_layer(pad.name.removesuffix("_pad")) for pad in pads]
    assert all(conv.padding == "same" and conv.strides == (2, 2) for conv in convolutions)
    for expected, found in zip(as_keras_built, stages(images)):
        np.testing.assert_array_equal(np.asarray(found), expected)


def test_too_elongated_size_is_a_user_error():
    with pytest.raises(UserError, match="too elongated"):
        build_model("efficientdet-lite0", image_size="2048x64")


@pytest.fixture
def restore_dtype_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_with_float32_outputs(policy, restore_dtype_policy):
    images = np.random.default_rng(2).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    full_precision = build_model("efficientdet-d0", num_classes=4, image_size=64)
    keras.mixed_precision.set_dtype_policy(policy)
    mixed = build_model("efficientdet-d0", num_classes=4, image_size=64)
    mixed.set_weights(full_precision.get_weights())
    assert all(weight.dtype == "float32" for weight in mixed.weights)
    assert mixed.get_layer("fpn_cells").compute_dtype == policy.removeprefix("mixed_")
    expected_class, _ = full_precision(images)
    class_outputs, box_outputs = mixed(images)
    assert all(t.dtype == "float32" for t in class_outputs + box_outputs)
    for expected, found in zip(expected_class, class_outputs):
        assert np.isfinite(found).all()
        np.testing.assert_allclose(found, expected, atol=0.05)


def test_keras_file_round_trip(tmp_path):
    """Every custom layer has get_config: a model saved as .keras loads back, same outputs."""
    model = build_model("efficientdet-d0", num_classes=3, image_size=64)
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    path = tmp_path / "d0.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert {layer.name for layer in loaded.layers} == {layer.name for layer in model.layers}
    for before, after in zip(tf.nest.flatten(model(images)), tf.nest.flatten(loaded(images))):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
