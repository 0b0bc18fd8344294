"""`efficientdet inspect_pipeline`: draw examples as the model sees them, from a run's pipeline.

The train view goes through the run's augmentation (AutoAugment policy, flip, scale jitter
with crop or pad); the eval view is resized and padded only. Boxes and class names are the
pipeline's labels, so a box that drifts from its object under augmentation shows here.
"""

import logging
from pathlib import Path

import cv2
import numpy as np
import yaml

from efficientdet.atomic import atomic_output
from efficientdet.drawing import class_colour, draw_box, line_style
from efficientdet.errors import UserError
from efficientdet.model.description import from_dict
from efficientdet.train.input import preprocessed_examples

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument(
        "--model_description",
        required=True,
        type=Path,
        help="the run's model.yaml (models/{run}/model.yaml)",
    )
    parser.add_argument("--file_pattern", required=True, help="TFRecord shards to read")
    parser.add_argument(
        "--view",
        choices=("train", "eval"),
        required=True,
        help="train: augmented as in training; eval: resized and padded only",
    )
    parser.add_argument("--num_images", type=int, default=16, help="images to draw; default 16")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation")
    parser.add_argument("--output", required=True, type=Path, help="folder to create")


def run(args):
    try:
        recorded = yaml.safe_load(args.model_description.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{args.model_description}: cannot read ({error})") from None
    description = from_dict(recorded, args.model_description)
    examples = preprocessed_examples(
        args.file_pattern, description.config, training=args.view == "train", seed=args.seed
    )
    with atomic_output(args.output, directory=True) as folder:
        drawn = 0
        for example in examples.take(args.num_images).as_numpy_iterator():
            image = draw_example(example, description.label_map)
            name = f"{example['source_id']}.jpg"
            if not cv2.imwrite(str(folder / name), image):
                raise UserError(f"cannot write {args.output / name}")
            drawn += 1
    log.info("%d %s-view images drawn into %s", drawn, args.view, args.output)


def draw_example(example, label_map):
    """The example's image (BGR uint8) with its boxes and class names."""
    image = cv2.cvtColor(np.clip(example["image"], 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    thickness, font_scale = line_style(image)
    for box, label_id in zip(example["boxes"], example["classes"]):
        caption = label_map.get(int(label_id), str(int(label_id)))
        draw_box(image, box, class_colour(label_id), caption, thickness, font_scale)
    return image
