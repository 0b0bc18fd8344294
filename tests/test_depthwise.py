"""5x5 depthwise convolutions whose filter gradient runs as a forward convolution: TensorFlow's
values and gradients, and the trainer switching exactly the 5x5 stride-1 layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.depthwise import DepthwiseConv2D5x5, filter_gradient
from trainer_helpers import layers_after_the_trainer


@pytest.mark.parametrize("shape", [(2, 9, 7, 6), (1, 5, 5, 3), (3, 2, 11, 4), (4, 16, 16, 8)])
def test_filter_gradient_is_tensorflows(shape):
    rng = np.random.default_rng(sum(shape))
    inputs = tf.constant(rng.normal(size=shape))
    upstream = tf.constant(rng.normal(size=shape))
    want = tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(
        inputs, [5, 5, shape[-1], 1], upstream, [1, 1, 1, 1], "SAME"
    )
    got = filter_gradient(inputs, upstream, 5)
    assert got.shape == (5, 5, shape[-1], 1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _values_and_gradients(layer, images, upstream):
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = layer(images)
    return outputs, tape.gradient(outputs, [images, *layer.trainable_weights], upstream)


@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 5e-2)])
def test_layer_has_keras_values_and_gradients(policy, tolerance):
    keras_layer = keras.layers.DepthwiseConv2D(5, padding="same", activation="relu", dtype=policy)
    layer = DepthwiseConv2D5x5(5, padding="same", activation="relu", dtype=policy)
    images = tf.random.normal((3, 12, 10, 16), seed=1)
    keras_layer.build(images.shape)
    layer.build(images.shape)
    layer.set_weights(
        [np.random.default_rng(2).normal(size=w.shape) for w in keras_layer.get_weights()]
    )
    keras_layer.set_weights(layer.get_weights())
    upstream = tf.cast(tf.random.normal((3, 12, 10, 16), seed=3), layer.compute_dtype)
    want, want_gradients = _values_and_gradients(keras_layer, images, upstream)
    got, got_gradients = _values_and_gradients(layer, images, upstream)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(tf.cast(got, "float32"), tf.cast(want, "float32"))
    for got_gradient, want_gradient in zip(got_gradients, want_gradients):
        assert got_gradient.dtype == want_gradient.dtype
        scale = float(tf.reduce_max(tf.abs(tf.cast(want_gradient, "float32"))))
        np.testing.assert_allclose(
            tf.cast(got_gradient, "float32"),
            tf.cast(want_gradient, "float32"),
            atol=tolerance * scale,
        )


def test_the_trainer_switches_the_5x5_stride_1_depthwise_layers():
    depthwise = layers_after_the_trainer(
        lambda layer: isinstance(layer, keras.layers.DepthwiseConv2D)
    )
    switched = {layer.name for layer in depthwise if type(layer) is DepthwiseConv2D5x5}
    # EfficientNet-B0's 5x5 blocks but the two that open a stride-2 stage (3a, 6a).
    assert switched == {
        f"block{block}_dwconv" for block in ("3b", "5a", "5b", "5c", "6b", "6c", "6d")
    }
    assert all(
        layer.kernel_size == (3, 3) or layer.strides == (2, 2)
        for layer in depthwise
        if layer.name not in switched
    )
