"""Fused batch normalisation: the same numbers as keras.layers.BatchNormalization, one op in
training, Keras' own graph at inference, and every BatchNormalization of the network fused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientdet import build_model
from efficientdet.keras_internals import flatten_layers
from efficientdet.model.batch_norm import FusedBatchNormalization


def _pair(shape, seed=0):
    """(Keras' layer, the fused one) built on `shape` with the same random weights."""
    rng = np.random.default_rng(seed)
    plain = keras.layers.BatchNormalization(momentum=0.9)
    fused = FusedBatchNormalization(momentum=0.9)
    for layer in (plain, fused):
        layer.build(shape)
    weights = [rng.uniform(0.5, 1.5, shape[-1]).astype("float32") for _ in plain.weights]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


def _step(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * upstream)
    return y, tape.gradient(loss, [x, layer.gamma, layer.beta])


@pytest.mark.parametrize("shape", [(8, 16, 16, 24), (2, 2, 2, 5), (1, 3, 5, 7)])
def test_training_matches_keras_outputs_gradients_and_moving_statistics(shape):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(3.0, 2.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    plain, fused = _pair(shape)
    expected, expected_grads = _step(plain, x, upstream)
    found, found_grads = _step(fused, x, upstream)
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4)
    for name, want, got in zip(("x", "gamma", "beta"), expected_grads, found_grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=name)
    for want, got in zip(plain.non_trainable_weights, fused.non_trainable_weights):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=want.name)


def test_inference_is_keras_own_graph():
    shape = (2, 4, 4, 3)
    plain, fused = _pair(shape)
    x = tf.random.normal(shape)

    def ops(layer, training):
        graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in ops(fused, True)
    assert "FusedBatchNormV3" not in ops(fused, False)
    assert ops(fused, False) == ops(plain, False)
    np.testing.assert_array_equal(fused(x, training=False), plain(x, training=False))


def test_every_batch_norm_of_the_network_is_fused_and_trains_fused():
    model = build_model("efficientdet-d0", num_classes=3, image_size=64)
    norms = [
        layer
        for layer in flatten_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms and all(type(layer) is FusedBatchNormalization for layer in norms)
    images = tf.random.uniform((1, 64, 64, 3), 0, 255)
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(images).graph
    fused_ops = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert len(fused_ops) == len(norms)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_in_float32_and_returns_the_compute_dtype(policy):
    shape = (4, 6, 6, 8)
    x = tf.random.normal(shape, 2.0, 3.0)
    plain, _ = _pair(shape)
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        _, mixed = _pair(shape)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    found = mixed(tf.cast(x, mixed.compute_dtype), training=True)
    assert found.dtype == mixed.compute_dtype
    expected = plain(tf.cast(tf.cast(x, mixed.compute_dtype), "float32"), training=True)
    np.testing.assert_allclose(tf.cast(found, "float32"), expected, atol=0.05)
    for want, got in zip(plain.non_trainable_weights, mixed.non_trainable_weights):
        assert got.dtype == "float32"
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
