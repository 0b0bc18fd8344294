"""BiFPN, the weighted bidirectional feature pyramid of EfficientDet.

Layer names follow google/automl's variable scopes (fpn_cells/cell_0/fnode3/resample_0_0_8/...),
so a variable's path is its name in an official checkpoint. Sublayers and weights are held in
tuples, not lists: tf.train.Checkpoint does not see into Keras' tracked lists (keras 3.15).
"""

import keras
import numpy as np
from keras import ops

from efficientdet.errors import UserError
from efficientdet.model.batch_norm import FusedBatchNormalization
from efficientdet.model.lazy_layer import LazyLayer

FUSION_EPSILON = 1e-4


def bifpn_nodes(min_level, max_level):
    """automl's BiFPN graph as (level, input ids) per node, top-down then bottom-up.

    Ids index the features a cell sees: the input levels min..max first, then each node's
    output in order.
    """
    node_ids = {level: [level - min_level] for level in range(min_level, max_level + 1)}
    next_id = max_level - min_level + 1
    nodes = []
    for level in range(max_level - 1, min_level - 1, -1):
        nodes.append((level, [node_ids[level][-1], node_ids[level + 1][-1]]))
        node_ids[level].append(next_id)
        next_id += 1
    for level in range(min_level + 1, max_level + 1):
        nodes.append((level, node_ids[level][:] + [node_ids[level - 1][-1]]))
        node_ids[level].append(next_id)
        next_id += 1
    return nodes


@keras.saving.register_keras_serializable(package="efficientdet")
class ResampleFeatureMap(keras.layers.Layer):
    """Brings a feature map to `num_channels` channels and to `target_size` (h, w).

    A 1x1 convolution and batch norm change the width, only when it differs; max-pooling
    (window stride + 1, SAME padding) shrinks and nearest-neighbour resizing enlarges.
    """

    def __init__(self, num_channels, target_size, **kwargs):
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.target_size = tuple(target_size)

    def get_config(self):
        return {
            **super().get_config(),
            "num_channels": self.num_channels,
            "target_size": self.target_size,
        }

    def build(self, input_shape):
        height, width, channels = input_shape[1:]
        target_height, target_width = self.target_size
        self.projection = None
        if channels != self.num_channels:
            self.projection = (
                keras.layers.Conv2D(self.num_channels, 1, padding="same", name="conv2d"),
                FusedBatchNormalization(name="bn"),
            )
        self.pool = None
        if height > target_height and width > target_width:
            strides = ((height - 1) // target_height + 1, (width - 1) // target_width + 1)
            self.pool = keras.layers.MaxPooling2D(
                pool_size=(strides[0] + 1, strides[1] + 1), strides=strides, padding="same"
            )
        elif height > target_height or width > target_width:
            raise UserError(
                f"image_size: too elongated; {self.name} cannot resample a {height}x{width} "
                f"feature map to {target_height}x{target_width}"
            )

    def call(self, x, training=None):
        if self.projection:
            conv, batch_norm = self.projection
            x = batch_norm(conv(x), training=training)
        if self.pool:
            return self.pool(x)
        return upsample_nearest(x, self.target_size)


def upsample_nearest(x, target_size):
    """Nearest-neighbour resize without half-pixel centres (TF1's resize_nearest_neighbor, as
    automl): output row i reads input row floor(i * in / out)."""
    for axis, target in zip((1, 2), target_size):
        size = x.shape[axis]
        if size != target:
            x = ops.take(x, np.arange(target) * size // target, axis=axis)
    return x


@keras.saving.register_keras_serializable(package="efficientdet")
class OpAfterCombine(LazyLayer):
    """Activation, 3x3 separable convolution, batch norm: applied to each fused node."""

    def __init__(self, num_filters, act_type, **kwargs):
        super().__init__(**kwargs)
        self.num_filters = num_filters
        self.act_type = act_type
        self.activation = keras.activations.get(act_type)
        self.conv = keras.layers.SeparableConv2D(num_filters, 3, padding="same", name="conv")
        self.bn = FusedBatchNormalization(name="bn")

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters, "act_type": self.act_type}

    def call(self, x, training=None):
        return self.bn(self.conv(self.activation(x)), training=training)


@keras.saving.register_keras_serializable(package="efficientdet")
class FusionNode(keras.layers.Layer):
    """One BiFPN node: resamples its inputs to its level, fuses them, convolves the result.

    Called with every feature the cell has so far; uses those at `input_ids` and takes its size
    from the feature at `target_id` (the cell's input at its level).
    """

    def __init__(self, target_id, input_ids, num_filters, weight_method, act_type, **kwargs):
        super().__init__(**kwargs)
        if weight_method not in ("fastattn", "attn", "sum"):
            raise ValueError(f"unknown BiFPN weight method {weight_method!r}")
        self.target_id = target_id
        self.input_ids = list(input_ids)
        self.num_filters = num_filters
        self.weight_method = weight_method
        self.act_type = act_type

    def get_config(self):
        return {
            **super().get_config(),
            "target_id": self.target_id,
            "input_ids": self.input_ids,
            "num_filters": self.num_filters,
            "weight_method": self.weight_method,
            "act_type": self.act_type,
        }

    def build(self, features_shape):
        target_size = features_shape[self.target_id][1:3]
        self.resamplers = tuple(
            ResampleFeatureMap(
                self.num_filters,
                target_size,
                name=f"resample_{i}_{input_id}_{len(features_shape)}",
            )
            for i, input_id in enumerate(self.input_ids)
        )
        self.edge_weights = ()
        if self.weight_method != "sum":
            self.edge_weights = tuple(
                self.add_weight(shape=(), initializer="ones", name="WSM" + (f"_{i}" if i else ""))
                for i in range(len(self.input_ids))
            )
        self.combine = OpAfterCombine(
            self.num_filters, self.act_type, name=f"op_after_combine{len(features_shape)}"
        )

    def call(self, features, training=None):
        nodes = [
            resample(features[input_id], training=training)
            for resample, input_id in zip(self.resamplers, self.input_ids)
        ]
        return self.combine(self.fuse(nodes), training=training)

    def fuse(self, nodes):
        dtype = nodes[0].dtype
        weights = [ops.cast(weight, dtype) for weight in self.edge_weights]
        if self.weight_method == "fastattn":
            weights = [ops.relu(weight) for weight in weights]
            weights_sum = sum(weights[1:], weights[0])
            nodes = [
                node * weight / (weights_sum + FUSION_EPSILON)
                for node, weight in zip(nodes, weights)
            ]
        elif self.weight_method == "attn":
            weights = ops.softmax(ops.stack(weights))
            nodes = [node * weights[i] for i, node in enumerate(nodes)]
        return sum(nodes[1:], nodes[0])


@keras.saving.register_keras_serializable(package="efficientdet")
class BiFPNCell(LazyLayer):
    """One BiFPN layer: maps features at levels min..max to new ones at the same levels."""

    def __init__(self, min_level, max_level, num_filters, weight_method, act_type, **kwargs):
        super().__init__(**kwargs)
        self.min_level = min_level
        self.max_level = max_level
        self.options = dict(num_filters=num_filters, weight_method=weight_method, act_type=act_type)
        self.fnodes = tuple(
            FusionNode(
                level - min_level, input_ids, num_filters, weight_method, act_type, name=f"fnode{i}"
            )
            for i, (level, input_ids) in enumerate(bifpn_nodes(min_level, max_level))
        )

    def get_config(self):
        return {
            **super().get_config(),
            "min_level": self.min_level,
            "max_level": self.max_level,
            **self.options,
        }

    def call(self, features, training=None):
        features = list(features)
        newest_at_level = {
            level: level - self.min_level for level in range(self.min_level, self.max_level + 1)
        }
        for fnode in self.fnodes:
            features.append(fnode(features, training=training))
            newest_at_level[self.min_level + fnode.target_id] = len(features) - 1
        return [
            features[newest_at_level[level]] for level in range(self.min_level, self.max_level + 1)
        ]


@keras.saving.register_keras_serializable(package="efficientdet")
class BiFPN(LazyLayer):
    """`repeats` BiFPN cells in sequence (automl's fpn_cells)."""

    def __init__(
        self, min_level, max_level, num_filters, repeats, weight_method, act_type, **kwargs
    ):
        super().__init__(**kwargs)
        self.options = dict(
            min_level=min_level,
            max_level=max_level,
            num_filters=num_filters,
            repeats=repeats,
            weight_method=weight_method,
            act_type=act_type,
        )
        self.cells = tuple(
            BiFPNCell(min_level, max_level, num_filters, weight_method, act_type, name=f"cell_{i}")
            for i in range(repeats)
        )

    def get_config(self):
        return {**super().get_config(), **self.options}

    def call(self, features, training=None):
        for cell in self.cells:
            features = cell(features, training=training)
        return features
