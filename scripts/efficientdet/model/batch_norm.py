"""Batch normalisation that trains with TensorFlow's fused kernel.

keras.layers.BatchNormalization trains through tf.nn.moments and tf.nn.batch_normalization:
about ten elementwise and reduction ops over the activations forward, more backward. The fused
kernel (FusedBatchNormV3, which tf.keras and so google/automl train with) is one op each way.
The layers, weights, moving statistics (Keras' biased batch variance) and inference graph stay
Keras' own; only the training computation changes.
"""

import keras
import tensorflow as tf

from efficientdet.keras_internals import flatten_layers


@keras.saving.register_keras_serializable(package="efficientdet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose training step on NHWC images is one fused op."""

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=self.gamma,
            offset=self.beta,
            mean=tf.constant([], tf.float32),
            variance=tf.constant([], tf.float32),
            epsilon=self.epsilon,
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased variance; Keras averages the biased one.
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        variance *= (count - 1.0) / count
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum + batch * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)

    def _fusable(self, inputs, training, mask):
        return bool(
            training
            and self.trainable
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and keras.backend.backend() == "tensorflow"
        )


def fuse_batch_norms(model):
    """Makes the keras.layers.BatchNormalization layers of a model built elsewhere
    (keras.applications' EfficientNet) FusedBatchNormalization, in place: a subclass with the same
    state, so names and weights stay; saved, the layers load back as FusedBatchNormalization."""
    for layer in flatten_layers(model):
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
