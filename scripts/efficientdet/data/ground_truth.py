"""`efficientdet ground_truth`: COCO ground truth of a split, with the records' ids.

Image ids are the records' source ids, category ids the label-map ids, boxes [x, y, w, h] in
pixels. Difficult objects stay ordinary objects (iscrowd 0) and keep a `difficult` field.
"""

import json
import logging
from pathlib import Path

from efficientdet.atomic import atomic_output
from efficientdet.data.annotations import read_split
from efficientdet.data.label_map import read_label_map

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--annotations", required=True, type=Path, help="the annotation table")
    parser.add_argument("--label_map", required=True, type=Path, help="label_map.yaml")
    parser.add_argument("--split", required=True, type=Path, help="the split's image list")
    parser.add_argument("--output", required=True, type=Path, help="the COCO json to write")


def coco_dataset(entries, label_map):
    """The COCO ground-truth dict of `entries`."""
    label_of = {name: label_id for label_id, name in label_map.items()}
    images, annotations = [], []
    for entry in entries:
        images.append(
            {
                "id": entry.image_id,
                "file_name": entry.image,
                "width": entry.width,
                "height": entry.height,
            }
        )
        for box in entry.objects:
            width, height = box.xmax - box.xmin, box.ymax - box.ymin
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": entry.image_id,
                    "category_id": label_of[box.name],
                    "bbox": [box.xmin, box.ymin, width, height],
                    "area": width * height,
                    "iscrowd": 0,
                    "difficult": box.difficult,
                }
            )
    categories = [
        {"id": label_id, "name": name, "supercategory": "object"}
        for label_id, name in label_map.items()
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def run(args):
    entries = read_split(args.split, args.annotations)
    dataset = coco_dataset(entries, read_label_map(args.label_map))
    with atomic_output(args.output) as temporary:
        temporary.write_text(json.dumps(dataset), encoding="utf-8")
    log.info(
        "%s: %d images, %d objects",
        args.output,
        len(dataset["images"]),
        len(dataset["annotations"]),
    )
