"""google/automl's hyperparameter names and label maps, and what each means here.

An hparams file written for the original (its `--hparams=voc_config.yaml`) is read by the same
names. Most names are ours too; `translate` maps the rest: `nms_configs` becomes the `nms_*`
names, the predefined label maps `coco`, `voc` and `waymo` become their {id: name} mappings,
and names for things this project does elsewhere (a flag, a config key) or not at all are
accepted while they hold the original's default and refused with the reason otherwise, so
that a file never silently means something else here. No TensorFlow import: the workflow and
the data stage read this module too.
"""

import logging
from pathlib import Path

from efficientdet.config import get_config
from efficientdet.data.label_map import parse_label_map, read_label_map
from efficientdet.errors import UserError

log = logging.getLogger(__name__)

# The original's predefined label maps (efficientdet/tf2/label_util.py), 0 being background.
COCO = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}
VOC = dict(
    enumerate(
        (
            "aeroplane",
            "bicycle",
            "bird",
            "boat",
            "bottle",
            "bus",
            "car",
            "cat",
            "chair",
            "cow",
            "diningtable",
            "dog",
            "horse",
            "motorbike",
            "person",
            "pottedplant",
            "sheep",
            "sofa",
            "train",
            "tvmonitor",
        ),
        start=1,
    )
)
WAYMO = {1: "vehicle", 2: "pedestrian", 3: "cyclist"}
LABEL_MAPS = {"coco": COCO, "voc": VOC, "waymo": WAYMO}

# The original's nms_configs keys -> ours; it reads None and 0 as "the method's default".
_NMS_CONFIGS = {
    "method": "nms_method",
    "iou_thresh": "nms_iou_threshold",
    "score_thresh": "nms_score_threshold",
    "sigma": "nms_sigma",
    "max_output_size": "max_detections",
}
# Accepted, whatever the value: the original's bookkeeping, which leaves the model alone.
_NO_EFFECT = {
    "map_freq": "checkpoints are evaluated by `snakemake evaluate`, every one of them",
    "img_summary_steps": "no image summaries are written",
    "sample_image": "no image summaries are written",
    "verbose": "progress is logged per epoch",
    "save_freq": "a checkpoint is written every epoch",
    "drop_remainder": "evaluation sees every image",
    "use_keras_model": "there is only the Keras model",
    "skip_mismatch": "head weights of another shape are always skipped",
    "dataset_type": "the records' keys say what they hold",
    "regenerate_source_id": "the data stage gives every image a unique source_id",
    "tflite_max_detections": "the TFLite models hold no NMS (README, export)",
}
# Accepted at the original's default; any other value is refused with the reason.
_ORIGINAL_DEFAULTS = {
    "strategy": (None, "use --strategy (train.strategy)"),
    "mixed_precision": (False, "use --mixed_precision (train.mixed_precision)"),
    "loss_scale": (None, "mixed_float16 scales the loss dynamically"),
    "data_format": ("channels_last", "the network is channels_last"),
    "is_training_bn": (True, "freeze batch normalization with var_freeze_expr instead"),
    "heads": (["object_detection"], "there is no segmentation head"),
    "seg_num_classes": (3, "there is no segmentation head"),
    "grid_mask": (False, "grid mask augmentation is not implemented"),
    "target_size": (None, "not implemented"),
    "scale_range": (False, "not implemented"),
    "separable_conv": (True, "the network has separable convolutions, as the checkpoints"),
    "apply_bn_for_resampling": (True, "the network is the released checkpoints'"),
    "conv_after_downsample": (False, "the network is the released checkpoints'"),
    "conv_bn_act_pattern": (False, "the network is the released checkpoints'"),
    "fpn_name": (None, "the BiFPN is the released checkpoints'"),
    "fpn_config": (None, "the BiFPN is the released checkpoints'"),
    "survival_prob": (None, "stochastic depth is not implemented"),
    "backbone_config": (None, "the backbone is the variant's"),
    "ckpt_var_scope": (None, "checkpoints are read by their own variable names"),
    "positives_momentum": (None, "the loss is normalised by each batch's positives"),
    "grad_checkpoint": (False, "gradient checkpointing is not implemented"),
}
# Ours too, but the network is built from the variant alone: a value other than the
# variant's would be recorded yet not built.
_ARCHITECTURE = (
    "backbone",
    "fpn_num_filters",
    "fpn_cell_repeats",
    "box_class_repeats",
    "min_level",
    "max_level",
    "num_scales",
    "fpn_weight_method",
    "act_type",
    "mean_rgb",
    "stddev_rgb",
)


def label_map_from(value, source):
    """{id: name} from what the original's `label_map` takes: a mapping, `coco`, `voc`,
    `waymo`, or the path of a YAML file; None stays None."""
    if value is None:
        return None
    if isinstance(value, dict):
        return parse_label_map(value, source)
    if not isinstance(value, str):
        raise UserError(
            f"{source}: label_map {value!r} is neither a mapping, a name "
            f"({', '.join(LABEL_MAPS)}) nor a YAML file"
        )
    if value in LABEL_MAPS:
        return dict(LABEL_MAPS[value])
    if not Path(value).is_file():
        raise UserError(
            f"{source}: label_map {value!r} is neither a predefined label map "
            f"({', '.join(LABEL_MAPS)}) nor an existing YAML file"
        )
    return read_label_map(value)


def translate(hparams, model_name, source="--hparams"):
    """The hparams in this project's names; errors name any setting that would mean
    something else here. `label_map` comes back as {id: name} (or None)."""
    variant = get_config(model_name).as_dict()
    translated = {}
    for key, value in hparams.items():
        if key in ("mean_rgb", "stddev_rgb") and isinstance(value, (int, float)):
            value = [float(value)] * 3  # the original's lite variants give one for all channels
        if key == "nms_configs":
            translated.update(_nms_settings(value, source))
        elif key == "label_map":
            translated[key] = label_map_from(value, source)
        elif key in ("name", "backbone_name"):
            expected = variant["name" if key == "name" else "backbone"]
            if value != expected:
                raise UserError(
                    f"{source}: {key}={value!r} but the model is {model_name} "
                    f"({expected}); choose the variant with --model_name"
                )
        elif key in _NO_EFFECT:
            log.info("%s: %s has no effect here: %s", source, key, _NO_EFFECT[key])
        elif key in _ORIGINAL_DEFAULTS:
            default, reason = _ORIGINAL_DEFAULTS[key]
            if value != default:
                raise UserError(
                    f"{source}: {key}={value!r} is not supported here ({reason}); "
                    f"only the original's default {default!r} is accepted"
                )
        elif (
            key in _ARCHITECTURE and value is not None and _as_list(value) != _as_list(variant[key])
        ):
            raise UserError(
                f"{source}: {key}={value!r} would change the network of "
                f"{model_name} ({variant[key]!r}); choose another --model_name"
            )
        else:
            translated[key] = value
    aspect_ratios = translated.get("aspect_ratios")
    if aspect_ratios is not None and len(aspect_ratios) != len(variant["aspect_ratios"]):
        raise UserError(
            f"{source}: aspect_ratios {aspect_ratios!r} would change the number of "
            f"anchors per location, so the network; give "
            f"{len(variant['aspect_ratios'])} of them"
        )
    return translated


def _nms_settings(nms_configs, source):
    if not isinstance(nms_configs, dict):
        raise UserError(f"{source}: nms_configs must be a mapping, got {nms_configs!r}")
    settings = {}
    for key, value in nms_configs.items():
        if key in _NMS_CONFIGS:
            if value:
                settings[_NMS_CONFIGS[key]] = value
        elif key in ("pyfunc", "max_nms_inputs") and not value:
            continue  # the original's defaults (off): its pyfunc NMS and input cap
        else:
            raise UserError(f"{source}: nms_configs.{key}={value!r} is not supported here")
    return settings


def _as_list(value):
    return [_as_list(item) for item in value] if isinstance(value, (list, tuple)) else value
