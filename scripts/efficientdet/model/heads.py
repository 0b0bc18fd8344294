"""Class and box prediction heads, shared across pyramid levels.

Convolutions are shared by all levels; each level has its own batch norms (automl's
class-{repeat}-bn-{level}). Layer names follow automl's variable scopes. Sublayers are held in
tuples, which tf.train.Checkpoint sees into (it does not see into Keras' tracked lists).
"""

import math

import keras
from keras import ops

from efficientdet.model.batch_norm import FusedBatchNormalization
from efficientdet.model.lazy_layer import LazyLayer

CLASS_PRIOR_PROBABILITY = 0.01


@keras.saving.register_keras_serializable(package="efficientdet")
class PredictionHead(LazyLayer):
    """`repeats` x (separable conv, per-level batch norm, activation), then a separable conv
    predicting `num_outputs` channels per location. Outputs are float32 under any dtype policy.
    """

    def __init__(
        self,
        prefix,
        num_outputs,
        num_filters,
        repeats,
        min_level,
        max_level,
        act_type,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.options = dict(
            prefix=prefix,
            num_outputs=num_outputs,
            num_filters=num_filters,
            repeats=repeats,
            min_level=min_level,
            max_level=max_level,
            act_type=act_type,
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.activation = keras.activations.get(act_type)
        self.convs = tuple(
            separable_conv(num_filters, name=f"{prefix}-{i}") for i in range(repeats)
        )
        self.batch_norms = tuple(
            tuple(
                FusedBatchNormalization(name=f"{prefix}-{i}-bn-{level}")
                for level in range(min_level, max_level + 1)
            )
            for i in range(repeats)
        )
        self.predict = separable_conv(
            num_outputs, name=f"{prefix}-predict", bias_initializer=self.bias_initializer
        )

    def get_config(self):
        return {
            **super().get_config(),
            **self.options,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    def call(self, features, training=None):
        outputs = []
        for level_index, x in enumerate(features):
            for conv, batch_norms in zip(self.convs, self.batch_norms):
                x = self.activation(batch_norms[level_index](conv(x), training=training))
            outputs.append(ops.cast(self.predict(x), "float32"))
        return outputs


def separable_conv(filters, name, bias_initializer="zeros"):
    return keras.layers.SeparableConv2D(
        filters,
        3,
        padding="same",
        depthwise_initializer="variance_scaling",
        pointwise_initializer="variance_scaling",
        bias_initializer=bias_initializer,
        name=name,
    )


def class_head(num_classes, num_anchors, num_filters, repeats, min_level, max_level, act_type):
    """Logits [B, h, w, num_anchors * num_classes] per level; the bias starts every class at
    probability CLASS_PRIOR_PROBABILITY."""
    prior_bias = -math.log((1 - CLASS_PRIOR_PROBABILITY) / CLASS_PRIOR_PROBABILITY)
    return PredictionHead(
        "class",
        num_anchors * num_classes,
        num_filters,
        repeats,
        min_level,
        max_level,
        act_type,
        bias_initializer=keras.initializers.Constant(prior_bias),
        name="class_net",
    )


def box_head(num_anchors, num_filters, repeats, min_level, max_level, act_type):
    """Box regression [B, h, w, num_anchors * 4] per level (ty, tx, th, tw per anchor)."""
    return PredictionHead(
        "box",
        num_anchors * 4,
        num_filters,
        repeats,
        min_level,
        max_level,
        act_type,
        name="box_net",
    )
