"""EfficientNet-lite backbones (Keras has none): EfficientNet without squeeze-excitation, with
ReLU6, and with the stem and the first and last stages left unscaled (automl's
efficientnet_lite_builder). Layer names follow keras.applications' EfficientNet so that both
kinds of backbone share one feature lookup and one checkpoint name mapping.
"""

import math

import keras

from efficientdet.model.batch_norm import FusedBatchNormalization

# name: (width coefficient, depth coefficient)
SCALING = {
    "efficientnet-lite0": (1.0, 1.0),
    "efficientnet-lite1": (1.0, 1.1),
    "efficientnet-lite2": (1.1, 1.2),
    "efficientnet-lite3": (1.2, 1.4),
    "efficientnet-lite4": (1.4, 1.8),
}
# One row per stage: kernel size, repeats, input filters, output filters, expand ratio, stride.
STAGES = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
STEM_FILTERS = 32
DROP_CONNECT_RATE = 0.2
# As keras.applications' EfficientNet (and automl): He-normal over the output fan.
KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}


def round_filters(filters, width_coefficient, divisor=8):
    """Scales a filter count and rounds it to a multiple of `divisor`, losing at most 10%."""
    scaled = filters * width_coefficient
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def stage_repeats(stage_index, repeats, depth_coefficient):
    if stage_index in (0, len(STAGES) - 1):
        return repeats
    return int(math.ceil(depth_coefficient * repeats))


def build_efficientnet_lite(name, image_size, act_type="relu6"):
    """The convolutional part of EfficientNet-lite `name` (no head) as a keras.Model."""
    width_coefficient, depth_coefficient = SCALING[name]
    images = keras.Input(shape=(*image_size, 3), name="images")
    x = keras.layers.Conv2D(
        STEM_FILTERS,
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=KERNEL_INITIALIZER,
        name="stem_conv",
    )(images)
    x = FusedBatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation(act_type, name="stem_activation")(x)

    total_blocks = sum(
        stage_repeats(i, stage[1], depth_coefficient) for i, stage in enumerate(STAGES)
    )
    block_index = 0
    for stage_index, (kernel_size, repeats, _, filters_out, expand_ratio, stride) in enumerate(
        STAGES
    ):
        filters_out = round_filters(filters_out, width_coefficient)
        for repeat in range(stage_repeats(stage_index, repeats, depth_coefficient)):
            x = inverted_residual_block(
                x,
                filters_out=filters_out,
                kernel_size=kernel_size,
                stride=stride if repeat == 0 else 1,
                expand_ratio=expand_ratio,
                act_type=act_type,
                drop_rate=DROP_CONNECT_RATE * block_index / total_blocks,
                prefix=f"block{stage_index + 1}{chr(ord('a') + repeat)}_",
            )
            block_index += 1
    return keras.Model(images, x, name=name)


def inverted_residual_block(
    x, filters_out, kernel_size, stride, expand_ratio, act_type, drop_rate, prefix
):
    """MBConv without squeeze-excitation: expand 1x1, depthwise, project 1x1, residual."""
    inputs = x
    filters_in = x.shape[-1]
    if expand_ratio != 1:
        x = keras.layers.Conv2D(
            filters_in * expand_ratio,
            1,
            padding="same",
            use_bias=False,
            kernel_initializer=KERNEL_INITIALIZER,
            name=prefix + "expand_conv",
        )(x)
        x = FusedBatchNormalization(name=prefix + "expand_bn")(x)
        x = keras.layers.Activation(act_type, name=prefix + "expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=False,
        depthwise_initializer=KERNEL_INITIALIZER,
        name=prefix + "dwconv",
    )(x)
    x = FusedBatchNormalization(name=prefix + "bn")(x)
    x = keras.layers.Activation(act_type, name=prefix + "activation")(x)
    x = keras.layers.Conv2D(
        filters_out,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=KERNEL_INITIALIZER,
        name=prefix + "project_conv",
    )(x)
    x = FusedBatchNormalization(name=prefix + "project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(
                x
            )
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x
