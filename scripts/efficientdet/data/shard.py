"""`efficientdet shard`: write shard i of n of a split as a TFRecord file, without TensorFlow.

Shard i holds the split's images i, i + n, i + 2n, ... so every shard is a cross-section of the
split and shard sizes differ by at most one image.
"""

import logging
from pathlib import Path

from efficientdet.atomic import atomic_output
from efficientdet.data import tfrecord
from efficientdet.data.annotations import read_entries, read_image_list
from efficientdet.data.image_formats import RECORD_FORMATS
from efficientdet.data.label_map import read_label_map
from efficientdet.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--annotations", required=True, type=Path, help="the annotation table")
    parser.add_argument("--label_map", required=True, type=Path, help="label_map.yaml")
    parser.add_argument("--split", required=True, type=Path, help="the split's image list")
    parser.add_argument("--voc", required=True, type=Path, help="the unpacked dataset folder")
    parser.add_argument("--shard_index", required=True, type=int, help="i, from 0")
    parser.add_argument("--num_shards", required=True, type=int, help="n")
    parser.add_argument("--output", required=True, type=Path, help="the .tfrecord file to write")


def _record_image(path, image_format):
    """(bytes, format) a record carries: the file itself for JPEG/PNG, else a PNG of it."""
    if image_format in RECORD_FORMATS:
        return path.read_bytes(), image_format
    # Imported only for conversions: OpenCV would add ~0.1 s to every shard job.
    from efficientdet.data.images import png_bytes

    return png_bytes(path), "png"


def encode_entry(entry, voc, label_of):
    """Serialized tf.train.Example of one image and its boxes."""
    encoded, image_format = _record_image(voc / entry.image, entry.format)
    boxes = entry.objects
    return tfrecord.encode_example(
        {
            tfrecord.ENCODED: [encoded],
            tfrecord.FORMAT: [image_format.encode()],
            tfrecord.FILENAME: [entry.image.encode()],
            tfrecord.SOURCE_ID: [str(entry.image_id).encode()],
            tfrecord.HEIGHT: [entry.height],
            tfrecord.WIDTH: [entry.width],
            tfrecord.BBOX_XMIN: [box.xmin / entry.width for box in boxes],
            tfrecord.BBOX_YMIN: [box.ymin / entry.height for box in boxes],
            tfrecord.BBOX_XMAX: [box.xmax / entry.width for box in boxes],
            tfrecord.BBOX_YMAX: [box.ymax / entry.height for box in boxes],
            tfrecord.CLASS_LABEL: [label_of[box.name] for box in boxes],
            tfrecord.CLASS_TEXT: [box.name.encode() for box in boxes],
            tfrecord.AREA: [(box.xmax - box.xmin) * (box.ymax - box.ymin) for box in boxes],
            tfrecord.DIFFICULT: [box.difficult for box in boxes],
            tfrecord.TRUNCATED: [box.truncated for box in boxes],
            tfrecord.IS_CROWD: [0 for _ in boxes],
        }
    )


def run(args):
    if not 0 <= args.shard_index < args.num_shards:
        raise UserError(f"--shard_index {args.shard_index}: must lie in [0, {args.num_shards})")
    label_of = {name: label_id for label_id, name in read_label_map(args.label_map).items()}
    images = read_image_list(args.split)[args.shard_index :: args.num_shards]
    selected = read_entries(args.annotations, images, args.split)
    unknown = sorted({box.name for entry in selected for box in entry.objects} - set(label_of))
    if unknown:
        raise UserError(f"{args.label_map}: classes {unknown} of {args.annotations} are missing")
    with atomic_output(args.output) as temporary:
        count = tfrecord.write_records(
            temporary, (encode_entry(entry, args.voc, label_of) for entry in selected)
        )
    log.info("%s: %d records", args.output, count)
