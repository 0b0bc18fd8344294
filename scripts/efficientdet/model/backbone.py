"""Backbones that map normalised images to the P3, P4, P5 feature maps (strides 8, 16, 32).

EfficientNet-B0..B7 come from keras.applications, cut between its stem padding and the last
block: the cut leaves out keras' own Rescaling and Normalization layers (the detector normalises
with constants first), so the backbone holds exactly the weights of automl's backbone. The lite
backbones are written here with the same layer names.
"""

import keras

from efficientdet.model import efficientnet_lite
from efficientdet.model.batch_norm import fuse_batch_norms

KERAS_EFFICIENTNETS = {
    "efficientnet-b0": keras.applications.EfficientNetB0,
    "efficientnet-b1": keras.applications.EfficientNetB1,
    "efficientnet-b2": keras.applications.EfficientNetB2,
    "efficientnet-b3": keras.applications.EfficientNetB3,
    "efficientnet-b4": keras.applications.EfficientNetB4,
    "efficientnet-b5": keras.applications.EfficientNetB5,
    "efficientnet-b6": keras.applications.EfficientNetB6,
    "efficientnet-b7": keras.applications.EfficientNetB7,
}
# EfficientNet's stages 3, 5 and 7 end where the feature map reaches stride 8, 16 and 32.
FEATURE_STAGES = (3, 5, 7)


def build_backbone(name, image_size, act_type="swish"):
    """The backbone `name` as a keras.Model from [B, h, w, 3] normalised images to [P3, P4, P5].

    `act_type` applies to the lite backbones; keras' EfficientNets always use swish.
    """
    if name in KERAS_EFFICIENTNETS:
        classifier = keras_efficientnet(name, image_size)
        pad_within_strided_convolutions(classifier)
        fuse_batch_norms(classifier)
        first_layer = classifier.get_layer("stem_conv_pad")
        return keras.Model(first_layer.input, stage_outputs(classifier), name=name)
    if name in efficientnet_lite.SCALING:
        model = efficientnet_lite.build_efficientnet_lite(name, image_size, act_type)
        return keras.Model(model.inputs, stage_outputs(model), name=name)
    raise ValueError(f"unknown backbone {name!r}")


def keras_efficientnet(name, image_size, weights=None, include_top=False):
    """keras.applications' EfficientNet for `name` at `image_size` (h, w)."""
    return KERAS_EFFICIENTNETS[name](
        include_top=include_top, weights=weights, input_shape=(*image_size, 3)
    )


def same_padding(size, kernel_size, stride):
    """(before, after): what a 'same' convolution pads a side of `size` with."""
    total = max((-(-size // stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def pad_within_strided_convolutions(model):
    """keras' EfficientNet pads each strided convolution's input with a ZeroPadding2D layer, then
    convolves 'valid'; at a known size that is exactly a 'same' convolution's padding. The
    convolution then pads by itself, which saves copying the feature map (6% of serving time
    at d0). Only layer settings change: weights and the layers built stay as keras made them."""
    for pad in model.layers:
        if not isinstance(pad, keras.layers.ZeroPadding2D):
            continue
        convolution = model.get_layer(pad.name.removesuffix("_pad"))
        sizes = pad.input.shape[1:3]
        if None in sizes or convolution.padding != "valid":
            continue
        same = tuple(
            same_padding(size, kernel_size, stride)
            for size, kernel_size, stride in zip(
                sizes, convolution.kernel_size, convolution.strides
            )
        )
        if tuple(map(tuple, pad.padding)) == same:
            pad.padding = ((0, 0), (0, 0))
            convolution.padding = "same"


def stage_outputs(model):
    """Output tensors of the last layer of each of FEATURE_STAGES, looked up by layer name."""
    outputs = []
    for stage in FEATURE_STAGES:
        stage_layers = [layer for layer in model.layers if layer.name.startswith(f"block{stage}")]
        outputs.append(stage_layers[-1].output)
    return outputs
