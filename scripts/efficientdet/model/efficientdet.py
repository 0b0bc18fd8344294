"""EfficientDet: backbone, extra pyramid levels, BiFPN, class and box heads.

The network is google/automl's (efficientdet/tf2), layer for layer, so that its official
checkpoints load (see efficientdet.model.checkpoints).
"""

import keras

from efficientdet.config import get_config
from efficientdet.errors import UserError
from efficientdet.model.backbone import build_backbone
from efficientdet.model.bifpn import BiFPN, ResampleFeatureMap
from efficientdet.model.heads import box_head, class_head

BACKBONE_LEVELS = (3, 4, 5)


def build_model(name, num_classes=90, image_size=None):
    """EfficientDet variant `name` as a keras.Model.

    Input: float32 [B, H, W, 3] RGB pixels in [0, 255] at the model's image size (the
    variant's default, or `image_size`: int, "WxH" or (h, w)). Output: (class_outputs,
    box_outputs), lists over levels min..max of [B, h, w, A * num_classes] logits and
    [B, h, w, A * 4] box regressions, anchor-major channels, float32.
    """
    config = get_config(name, image_size=image_size)
    if config.min_level not in BACKBONE_LEVELS:
        raise UserError(
            f"model config: min_level {config.min_level} is not one of "
            f"the backbone's levels {BACKBONE_LEVELS}"
        )
    images = keras.Input(shape=(*config.image_size, 3), name="images")
    normalized = keras.layers.Rescaling(
        scale=[1.0 / std for std in config.stddev_rgb],
        offset=[-mean / std for mean, std in zip(config.mean_rgb, config.stddev_rgb)],
        name="normalize",
    )(images)

    backbone = build_backbone(config.backbone, config.image_size, config.act_type)
    features = backbone(normalized)[config.min_level - BACKBONE_LEVELS[0] :]
    for level in range(BACKBONE_LEVELS[-1] + 1, config.max_level + 1):
        height, width = features[-1].shape[1:3]
        extra_level = ResampleFeatureMap(
            config.fpn_num_filters,
            ((height + 1) // 2, (width + 1) // 2),
            name=f"resample_p{level}",
        )
        features.append(extra_level(features[-1]))

    features = BiFPN(
        config.min_level,
        config.max_level,
        config.fpn_num_filters,
        config.fpn_cell_repeats,
        config.fpn_weight_method,
        config.act_type,
        name="fpn_cells",
    )(features)

    head_args = dict(
        num_anchors=config.num_anchors,
        num_filters=config.fpn_num_filters,
        repeats=config.box_class_repeats,
        min_level=config.min_level,
        max_level=config.max_level,
        act_type=config.act_type,
    )
    class_outputs = class_head(num_classes, **head_args)(features)
    box_outputs = box_head(**head_args)(features)
    return keras.Model(images, (class_outputs, box_outputs), name=name)
