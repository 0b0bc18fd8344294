"""Swish with a fused gradient: keras' values forward, TensorFlow's gradient in one XLA kernel,
and every swish of a trained detector switched to it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.swish import swish
from trainer_helpers import layers_after_the_trainer


def _value_and_gradient(activation, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activation(x)
    return y, tape.gradient(y, x, output_gradients=upstream)


@pytest.mark.parametrize(
    "dtype, tolerance", [("float32", 1e-5), ("float16", 1e-2), ("bfloat16", 5e-2)]
)
def test_values_are_keras_swish_and_the_gradient_is_exact(dtype, tolerance):
    rng = np.random.default_rng(0)
    # Both tails included: sigmoid saturates at +-20.
    values = np.concatenate([rng.normal(0, 3, 350), [-20, 20, 0]])
    x = tf.constant(values, dtype)
    upstream = tf.constant(rng.normal(size=values.shape), dtype)
    want_y, _ = _value_and_gradient(keras.activations.swish, x, upstream)
    got_y, got_dx = _value_and_gradient(swish, x, upstream)
    assert got_y.dtype == got_dx.dtype == x.dtype
    np.testing.assert_array_equal(tf.cast(got_y, "float32"), tf.cast(want_y, "float32"))
    # The exact derivative, in float64, of the values as the dtype holds them.
    held = tf.cast(x, "float64").numpy()
    sigmoid = 1 / (1 + np.exp(-held))
    exact = tf.cast(upstream, "float64").numpy() * sigmoid * (1 + held * (1 - sigmoid))
    np.testing.assert_allclose(tf.cast(got_dx, "float64"), exact, rtol=tolerance, atol=tolerance)


def test_gradient_is_one_compiled_kernel():
    x = tf.random.normal((2, 8, 8, 4))

    def graph_ops(activation):
        def gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = activation(x)
            return tape.gradient(y, x)

        graph = tf.function(gradient).get_concrete_function(x).graph
        return graph.get_operations()

    def sigmoids(ops):
        return sum(op.type == "Sigmoid" for op in ops)

    compiled = [
        op
        for op in graph_ops(swish)
        if "_XlaMustCompile" in op.node_def.attr and op.get_attr("_XlaMustCompile")
    ]
    assert len(compiled) == 1
    # TensorFlow's gradient computes the sigmoid again outside any compiled kernel; ours does not.
    assert sigmoids(graph_ops(keras.activations.swish)) == 2
    assert sigmoids(graph_ops(swish)) == 1


def test_the_trainer_switches_every_swish_of_the_detector_and_keeps_its_outputs():
    swish_layers = layers_after_the_trainer(
        lambda layer: getattr(layer, "activation", None) is keras.activations.swish
    )
    # keras' EfficientNet blocks, the squeeze-excite convolutions, BiFPN nodes and both heads.
    assert len(swish_layers) > 60
    assert all(layer.activation is swish for layer in swish_layers)
