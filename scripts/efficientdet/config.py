"""The EfficientDet variants (d0..d7x, lite0..lite4) and the default training hyperparameters.

Values follow google/automl's efficientdet/hparams_config.py, so that a variant built here has the
same network as the released checkpoint of the same name. No TensorFlow import: the data stages
read this table too.
"""

import dataclasses
import re

from efficientdet.errors import UserError

# ImageNet statistics scaled to [0, 255] pixels (EfficientNet); the lite models use the
# inception-style constants that quantise better.
IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
LITE_MEAN_RGB = (127.0, 127.0, 127.0)
LITE_STDDEV_RGB = (128.0, 128.0, 128.0)

_VARIANT_FIELDS = (
    "backbone",
    "image_size",
    "fpn_num_filters",
    "fpn_cell_repeats",
    "box_class_repeats",
    "anchor_scale",
    "max_level",
    "fpn_weight_method",
    "act_type",
)
# name: backbone, image size, BiFPN width, BiFPN repeats, head repeats, anchor scale,
#       max level, BiFPN fusion, activation.  min_level is 3 for all.
_VARIANTS = {
    "efficientdet-d0": ("efficientnet-b0", 512, 64, 3, 3, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d1": ("efficientnet-b1", 640, 88, 4, 3, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d2": ("efficientnet-b2", 768, 112, 5, 3, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d3": ("efficientnet-b3", 896, 160, 6, 4, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d4": ("efficientnet-b4", 1024, 224, 7, 4, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d5": ("efficientnet-b5", 1280, 288, 7, 4, 4.0, 7, "fastattn", "swish"),
    "efficientdet-d6": ("efficientnet-b6", 1280, 384, 8, 5, 4.0, 7, "sum", "swish"),
    "efficientdet-d7": ("efficientnet-b6", 1536, 384, 8, 5, 5.0, 7, "sum", "swish"),
    "efficientdet-d7x": ("efficientnet-b7", 1536, 384, 8, 5, 4.0, 8, "sum", "swish"),
    "efficientdet-lite0": ("efficientnet-lite0", 320, 64, 3, 3, 3.0, 7, "sum", "relu6"),
    "efficientdet-lite1": ("efficientnet-lite1", 384, 88, 4, 3, 3.0, 7, "sum", "relu6"),
    "efficientdet-lite2": ("efficientnet-lite2", 448, 112, 5, 3, 3.0, 7, "sum", "relu6"),
    "efficientdet-lite3": ("efficientnet-lite3", 512, 160, 6, 4, 4.0, 7, "sum", "relu6"),
    "efficientdet-lite3x": ("efficientnet-lite3", 640, 200, 6, 4, 3.0, 7, "sum", "relu6"),
    "efficientdet-lite4": ("efficientnet-lite4", 640, 224, 7, 4, 4.0, 7, "sum", "relu6"),
}
MODEL_NAMES = tuple(_VARIANTS)


@dataclasses.dataclass(frozen=True)
class EfficientDetConfig:
    """One variant's architecture plus the training, loss and NMS defaults (automl's values)."""

    name: str
    backbone: str
    image_size: tuple  # (height, width)
    fpn_num_filters: int
    fpn_cell_repeats: int
    box_class_repeats: int
    anchor_scale: float
    fpn_weight_method: str  # "fastattn" (fast normalised fusion), "attn" (softmax) or "sum"
    act_type: str  # "swish", "relu6" or "relu"
    mean_rgb: tuple
    stddev_rgb: tuple
    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))  # (w, h) pairs
    # Optimisation.
    learning_rate: float = 0.08
    lr_warmup_init: float = 0.008
    lr_warmup_epoch: float = 1.0
    lr_decay_method: str = "cosine"
    momentum: float = 0.9
    weight_decay: float = 4e-5
    clip_gradients_norm: float = 10.0
    moving_average_decay: float = 0.9998
    num_epochs: int = 300
    # Losses.
    alpha: float = 0.25
    gamma: float = 1.5
    label_smoothing: float = 0.0
    delta: float = 0.1
    box_loss_weight: float = 50.0
    iou_loss_type: str | None = None  # None, "iou", "giou", "ciou", "diou"
    iou_loss_weight: float = 1.0
    # Input pipeline.
    jitter_min: float = 0.1
    jitter_max: float = 2.0
    input_rand_hflip: bool = True
    autoaugment_policy: str | None = None
    max_instances_per_image: int = 100
    skip_crowd_during_training: bool = True
    # Post-processing.
    nms_method: str = "gaussian"  # "gaussian" (soft-NMS) or "hard"
    nms_iou_threshold: float = 0.5
    nms_score_threshold: float = 0.001
    nms_sigma: float = 0.5
    nms_class_agnostic: bool = False
    max_detections: int = 100

    @property
    def num_anchors(self):
        return self.num_scales * len(self.aspect_ratios)

    def as_dict(self):
        return dataclasses.asdict(self)


def parse_image_size(image_size):
    """512 -> (512, 512); "640x384" (automl's WxH) -> (384, 640); (h, w) stays (h, w)."""
    if isinstance(image_size, int):
        size = (image_size, image_size)
    elif isinstance(image_size, str):
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", image_size)
        if not match:
            raise UserError(f"image_size: {image_size!r} is neither an integer nor 'WxH'")
        width = int(match.group(1))
        height = int(match.group(2) or width)
        size = (height, width)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise UserError(f"image_size: {image_size!r} is neither an integer, 'WxH' nor (h, w)")
    if min(size) < 32:
        raise UserError(f"image_size: {image_size!r} is smaller than 32 pixels")
    return size


def get_config(name, **overrides):
    """The config of variant `name` with `overrides` applied; an override of None keeps the default.

    image_size may be an int, automl's "WxH" string or an (h, w) pair; it becomes (h, w).
    """
    if name not in _VARIANTS:
        raise UserError(f"model name: unknown variant {name!r}; known: {', '.join(MODEL_NAMES)}")
    variant = dict(zip(_VARIANT_FIELDS, _VARIANTS[name]))
    lite = variant["backbone"].startswith("efficientnet-lite")
    defaults = dict(
        name=name,
        mean_rgb=LITE_MEAN_RGB if lite else IMAGENET_MEAN_RGB,
        stddev_rgb=LITE_STDDEV_RGB if lite else IMAGENET_STDDEV_RGB,
        **variant,
    )
    known = {field.name for field in dataclasses.fields(EfficientDetConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(f"model config: unknown key(s) {', '.join(unknown)}")
    defaults.update({key: value for key, value in overrides.items() if value is not None})
    defaults["image_size"] = parse_image_size(defaults["image_size"])
    return EfficientDetConfig(**defaults)
