"""`efficientdet inspect`: draw the boxes and class names of sample records on their images.

Everything drawn is read back from the TFRecord files (CRCs checked, image decoded from the
record's bytes), so a broken record shows: it either fails with its file and index or its boxes
land in the wrong place. Records are taken round-robin over the shards.
"""

import itertools
import logging
from pathlib import Path

import cv2

from efficientdet.atomic import atomic_output
from efficientdet.data import tfrecord
from efficientdet.data.images import decode_record_image
from efficientdet.drawing import class_colour, draw_box, line_style, put_caption
from efficientdet.errors import UserError

_SCALARS = (tfrecord.ENCODED, tfrecord.SOURCE_ID, tfrecord.HEIGHT, tfrecord.WIDTH)
_BOX = (tfrecord.BBOX_XMIN, tfrecord.BBOX_YMIN, tfrecord.BBOX_XMAX, tfrecord.BBOX_YMAX)
_WARNING_COLOUR = (0, 0, 255)
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--tfrecords", required=True, nargs="+", type=Path, help="shard files")
    parser.add_argument("--num_images", type=int, default=16, help="images to draw")
    parser.add_argument("--output", required=True, type=Path, help="folder to create")


def draw_record(features, where):
    """The record's image (BGR) with its boxes and class names drawn."""
    missing = [key for key in _SCALARS if len(features.get(key, ())) != 1]
    missing += [key for key in (*_BOX, tfrecord.CLASS_LABEL) if key not in features]
    if missing:
        raise UserError(f"{where}: missing or malformed features {missing}")
    image = decode_record_image(features[tfrecord.ENCODED][0])
    if image is None:
        raise UserError(f"{where}: the image bytes do not decode")
    height, width = features[tfrecord.HEIGHT][0], features[tfrecord.WIDTH][0]
    labels = features[tfrecord.CLASS_LABEL]
    texts = [text.decode() for text in features.get(tfrecord.CLASS_TEXT, [])] or [""] * len(labels)
    lengths = {key: len(features[key]) for key in _BOX} | {
        "texts": len(texts),
        "labels": len(labels),
    }
    if len(set(lengths.values())) > 1:
        raise UserError(f"{where}: object lists differ in length {lengths}")
    thickness, font_scale = line_style(image)
    boxes = zip(*(features[key] for key in _BOX))
    for (xmin, ymin, xmax, ymax), label_id, text in zip(boxes, labels, texts):
        box = (ymin * height, xmin * width, ymax * height, xmax * width)
        draw_box(image, box, class_colour(label_id), f"{text} ({label_id})", thickness, font_scale)
    if image.shape[:2] != (height, width):
        message = f"decoded {image.shape[1]}x{image.shape[0]} != record {width}x{height}"
        log.warning("%s: %s", where, message)
        put_caption(image, message, (0, image.shape[0] - 2), _WARNING_COLOUR, thickness, font_scale)
    return image


def _round_robin(paths):
    iterators = [
        zip(itertools.repeat(path), itertools.count(), tfrecord.read_records(path))
        for path in paths
    ]
    for group in itertools.zip_longest(*iterators):
        yield from (item for item in group if item is not None)


def run(args):
    with atomic_output(args.output, directory=True) as folder:
        drawn = 0
        for path, index, record in itertools.islice(_round_robin(args.tfrecords), args.num_images):
            where = f"{path}: record {index}"
            try:
                features = tfrecord.parse_example(record)
            except ValueError as error:
                raise UserError(f"{where}: not a tf.train.Example ({error})") from None
            image = draw_record(features, where)
            source_id = features[tfrecord.SOURCE_ID][0].decode()
            if not cv2.imwrite(str(folder / f"{source_id}.jpg"), image):
                raise UserError(f"{where}: cannot write {args.output / source_id}.jpg")
            drawn += 1
    log.info("%d images drawn into %s", drawn, args.output)
