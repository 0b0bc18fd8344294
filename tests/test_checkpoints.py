"""load_checkpoint: official automl checkpoints (the reference one and name-based checkpoints
written here in the same layout), this project's own checkpoints, Keras ImageNet weights."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE
from efficientdet import build_model, load_checkpoint
from efficientdet.errors import UserError
from efficientdet.model.backbone import keras_efficientnet
from efficientdet.model.checkpoints import EMA_SUFFIX, automl_variable_names

REFERENCE_CHECKPOINT = REFERENCE / "automl-efficientdet-d0"


def test_reference_checkpoint_reproduces_automl_outputs():
    if not REFERENCE_CHECKPOINT.is_dir():
        pytest.skip(f"{REFERENCE_CHECKPOINT} not present")
    expected = np.load(REFERENCE_CHECKPOINT / "expected_outputs.npz")
    model = build_model("efficientdet-d0", num_classes=90, image_size=128)
    load_checkpoint(model, REFERENCE_CHECKPOINT)
    class_outputs, box_outputs = model(expected["image"][None].astype("float32"))
    for level, class_output, box_output in zip(range(3, 8), class_outputs, box_outputs):
        np.testing.assert_allclose(class_output[0], expected[f"class_p{level}"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(box_output[0], expected[f"box_p{level}"], rtol=0, atol=1e-4)


def write_automl_checkpoint(model, prefix, replaced=None):
    """A name-based checkpoint in the released layout: plain weights (+1, so that reading them
    instead of the EMA copy shows), /ExponentialMovingAverage copies, /Momentum, global_step.
    `replaced` maps names to values written instead of the model's."""
    replaced = replaced or {}
    tensors = {"global_step": np.int64(1000)}
    for name, variable in automl_variable_names(model).items():
        value = replaced.get(name, variable.numpy())
        tensors[name] = value + 1
        tensors[name + EMA_SUFFIX] = value
        tensors[name + "/Momentum"] = np.full_like(value, np.nan)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=list(tensors),
        shape_and_slices=[""] * len(tensors),
        tensors=list(tensors.values()),
    )
    return str(prefix)


@pytest.fixture(scope="module")
def automl_d0(tmp_path_factory):
    """An automl-layout checkpoint of efficientdet-d0 (90 classes) and the model it came from."""
    model = build_model("efficientdet-d0", num_classes=90, image_size=64)
    prefix = write_automl_checkpoint(model, tmp_path_factory.mktemp("automl") / "model")
    return prefix, model


def test_other_num_classes_loads_all_but_the_class_predictor(automl_d0, caplog):
    prefix, source = automl_d0
    model = build_model("efficientdet-d0", num_classes=20, image_size=64)
    # Only these depend on num_classes; the predictor's depthwise kernel loads.
    skipped = {"class_net/class-predict/pointwise_kernel", "class_net/class-predict/bias"}
    names = automl_variable_names(model)
    initial = {name: names[name].numpy() for name in skipped}
    with caplog.at_level(logging.WARNING, logger="efficientdet.model.checkpoints"):
        load_checkpoint(model, prefix)
    assert all(name in caplog.text for name in skipped)

    source_names = automl_variable_names(source)
    for name, variable in names.items():
        expected = initial[name] if name in skipped else source_names[name].numpy()
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=name)


@pytest.mark.parametrize(
    "name, backbone_message",
    [
        ("efficientdet-d1", "its backbone is efficientnet-b0"),
        ("efficientdet-lite0", "its backbone is efficientnet-b0"),
    ],
)
def test_checkpoint_of_another_variant_is_refused(automl_d0, name, backbone_message):
    prefix, _ = automl_d0
    model = build_model(name, num_classes=90, image_size=64)
    before = [weight.numpy() for weight in model.weights]
    with pytest.raises(UserError, match=backbone_message):
        load_checkpoint(model, prefix)
    for initial, weight in zip(before, model.weights):
        np.testing.assert_array_equal(weight.numpy(), initial)


def test_misshapen_fpn_weight_is_refused(tmp_path):
    model = build_model("efficientdet-d0", num_classes=90, image_size=64)
    wrong_width = {"resample_p6/conv2d/kernel": np.zeros((1, 1, 320, 65), "float32")}
    prefix = write_automl_checkpoint(model, tmp_path / "model", wrong_width)
    with pytest.raises(UserError, match="resample_p6/conv2d/kernel has shape"):
        load_checkpoint(model, prefix)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    model = build_model("efficientdet-lite0", num_classes=3, image_size=64)
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(model, tmp_path / "nothing")
    with pytest.raises(UserError, match="holds no TensorFlow checkpoint"):
        load_checkpoint(model, tmp_path)


def outputs_of(model, images):
    class_outputs, box_outputs = model(images)
    return [output.numpy() for output in class_outputs + box_outputs]


def perturbed_model(rng):
    model = build_model("efficientdet-d0", num_classes=3, image_size=64)
    for weight in model.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def project_models():
    """Two differently perturbed d0 models (trained weights and their average) and a third one
    to restore into; loading overwrites every weight, so tests may share it."""
    rng = np.random.default_rng(0)
    restored = build_model("efficientdet-d0", num_classes=3, image_size=64)
    return perturbed_model(rng), perturbed_model(rng), restored


IMAGES = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")


def test_project_checkpoint_round_trip(tmp_path, project_models):
    trained, _, restored = project_models
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=trained), tmp_path, 1)
    prefix = manager.save()
    for path in (tmp_path, prefix):
        restored.set_weights([np.zeros(weight.shape) for weight in restored.weights])
        load_checkpoint(restored, path)
        for expected, found in zip(outputs_of(trained, IMAGES), outputs_of(restored, IMAGES)):
            np.testing.assert_array_equal(found, expected)

    with pytest.raises(UserError, match="does not fit model"):
        load_checkpoint(build_model("efficientdet-d1", num_classes=3, image_size=64), tmp_path)


def test_project_checkpoint_of_other_classes_loads_all_but_the_class_predictor(
    tmp_path, project_models, caplog
):
    trained, _, _ = project_models
    tf.train.Checkpoint(model=trained).save(tmp_path / "ckpt")
    five_classes = build_model("efficientdet-d0", num_classes=5, image_size=64)
    initial = {weight.path: weight.numpy() for weight in five_classes.weights}
    load_checkpoint(five_classes, tmp_path)
    predictor = {"class_net/class-predict/bias", "class_net/class-predict/pointwise_kernel"}
    for target, source in zip(five_classes.weights, trained.weights):
        if target.path in predictor:
            np.testing.assert_array_equal(target.numpy(), initial[target.path])
        else:
            np.testing.assert_array_equal(target.numpy(), source.numpy())
    assert "predicts 3 classes" in caplog.text and "class-predict/bias" in caplog.text


def test_project_checkpoint_gives_its_moving_average(tmp_path, project_models):
    trained, average, restored = project_models
    tf.train.Checkpoint(model=trained, ema_model=average).save(tmp_path / "ckpt")
    load_checkpoint(restored, tmp_path)
    for expected, found in zip(outputs_of(average, IMAGES), outputs_of(restored, IMAGES)):
        np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(
    "file_name, include_top",
    [
        ("efficientnetb0_notop.weights.h5", False),
        ("efficientnetb0.h5", True),
    ],
)
def test_keras_imagenet_weights_fill_the_backbone_only(tmp_path, file_name, include_top):
    classifier = keras_efficientnet("efficientnet-b0", (96, 96), include_top=include_top)
    weights_file = tmp_path / file_name
    if include_top:
        classifier.save(weights_file)
    else:
        classifier.save_weights(weights_file)

    model = build_model("efficientdet-d0", num_classes=3, image_size=128)
    fpn_before = [weight.numpy() for weight in model.get_layer("fpn_cells").weights]
    load_checkpoint(model, weights_file)
    for layer in model.get_layer("efficientnet-b0").layers:
        if not layer.weights:
            continue
        for weight, expected in zip(
            layer.get_weights(), classifier.get_layer(layer.name).get_weights()
        ):
            np.testing.assert_array_equal(weight, expected, err_msg=layer.name)
    for weight, before in zip(model.get_layer("fpn_cells").weights, fpn_before):
        np.testing.assert_array_equal(weight.numpy(), before)


def test_lite_backbone_has_no_keras_weights():
    model = build_model("efficientdet-lite0", num_classes=3, image_size=64)
    with pytest.raises(UserError, match="no ImageNet weights for efficientnet-lite0"):
        load_checkpoint(model, "imagenet")
