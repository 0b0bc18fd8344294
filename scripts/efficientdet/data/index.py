"""`efficientdet index`: find, parse and validate image/annotation pairs.

Writes the annotation table (see efficientdet.data.annotations), the label map and a validation
report that collects every warning. Any error (listed all together) leaves none of them behind.
"""

import concurrent.futures
import functools
import logging
import os
from pathlib import Path

import yaml

from efficientdet.atomic import atomic_output
from efficientdet.automl_hparams import label_map_from
from efficientdet.data.annotations import ImageEntry, write_table
from efficientdet.data.images import read_image_info
from efficientdet.data.label_map import discover_label_map, write_label_map
from efficientdet.data.voc import parse_annotation, validate
from efficientdet.data.voc_layout import find_pairs
from efficientdet.errors import UserError

_ERRORS_SHOWN = 50
_PAIRS_PER_TASK = 64
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--voc", required=True, type=Path, help="the unpacked dataset folder")
    parser.add_argument(
        "--label_map",
        default="null",
        help="optional {id: name} mapping as YAML/JSON text, or google/automl's coco, voc or "
        "waymo; null: discover classes",
    )
    parser.add_argument("--annotations", required=True, type=Path, help="annotation table to write")
    parser.add_argument(
        "--label_map_output", required=True, type=Path, help="label_map.yaml to write"
    )
    parser.add_argument("--report", required=True, type=Path, help="validation report to write")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    for split in ("train", "val"):
        parser.add_argument(
            f"--{split}_lists",
            nargs="+",
            default=None,
            help=f"image-set lists whose images make {split} (e.g. VOC2007/trainval; both "
            "--train_lists and --val_lists, or neither: each VOC folder's own lists)",
        )


def _given_label_map(text):
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"--label_map: not valid YAML/JSON ({error})") from None
    return label_map_from(mapping, "dataset.label_map")


def _check(root, pair):
    """(ImageEntry with image_id 0, warnings) for one pair; UserError when it is unusable."""
    image_path = root / pair.image
    if any(character in str(pair.image) for character in "\r\n"):
        raise UserError(f"{image_path!r}: file name contains a line break")
    info = read_image_info(image_path)
    warnings = []
    if info.color in ("grayscale", "CMYK"):
        warnings.append(
            f"{image_path}: {info.color} {info.format.upper()}, "
            "kept as is (decoders expand it to RGB)"
        )
    if info.orientation != 1:
        warnings.append(
            f"{image_path}: EXIF orientation {info.orientation}; records keep the stored pixels "
            "unrotated, as TensorFlow decodes them, so boxes drawn on the rotated photo would "
            "not match (check inspect/)"
        )
    objects = []
    if pair.annotation is not None:
        annotation_path = root / pair.annotation
        objects, box_warnings = validate(
            parse_annotation(annotation_path), info.width, info.height, annotation_path
        )
        warnings.extend(box_warnings)
    entry = ImageEntry(
        image_id=0,
        image=str(pair.image),
        annotation=str(pair.annotation or ""),
        format=info.format,
        width=info.width,
        height=info.height,
        image_set=pair.image_set,
        objects=tuple(objects),
    )
    return entry, warnings


def _check_or_error(root, pair):
    try:
        return (*_check(root, pair), None)
    except UserError as error:
        return None, [], str(error)


def _check_all(root, pairs, threads):
    entries, warnings, errors = [], [], []
    check = functools.partial(_check_or_error, root)
    # Processes, not threads: parsing XML and checking boxes is Python work that holds the GIL.
    with concurrent.futures.ProcessPoolExecutor(max(1, threads)) as pool:
        for entry, entry_warnings, error in pool.map(check, pairs, chunksize=_PAIRS_PER_TASK):
            if error is not None:
                errors.append(error)
                continue
            entries.append(entry)
            warnings.extend(entry_warnings)
    if errors:
        shown = "\n".join(errors[:_ERRORS_SHOWN])
        more = (
            f"\n... and {len(errors) - _ERRORS_SHOWN} more" if len(errors) > _ERRORS_SHOWN else ""
        )
        raise UserError(f"{root}: {len(errors)} invalid file(s):\n{shown}{more}")
    return entries, warnings


def _label_map(entries, given, root):
    """The label map to use (given or discovered) and warnings about it."""
    files_of = {}
    for entry in entries:
        for name in entry.class_names:
            files_of.setdefault(name, []).append(entry.annotation)
    if given is None:
        return discover_label_map(files_of), []
    unknown = sorted(set(files_of) - set(given.values()))
    if unknown:
        lines = "\n".join(
            f"  {name!r} in {', '.join(files_of[name][:3])}"
            + (f" and {len(files_of[name]) - 3} more" if len(files_of[name]) > 3 else "")
            for name in unknown
        )
        raise UserError(f"{root}: classes not in the given label map (dataset.label_map):\n{lines}")
    unused = [name for name in given.values() if name not in files_of]
    return given, [
        f"dataset.label_map: class {name!r} has no object in the dataset" for name in unused
    ]


def _report_text(root, entries, warnings):
    negatives = [entry.image for entry in entries if not entry.objects]
    objects = sum(len(entry.objects) for entry in entries)
    lines = [
        f"# Validation report of {root}: {len(entries)} images "
        f"({len(negatives)} without objects), {objects} objects, {len(warnings)} warnings",
        *warnings,
    ]
    if negatives:
        lines.append(
            f"{len(negatives)} image(s) without objects kept as negative examples: "
            + ", ".join(negatives[:20])
            + (" ..." if len(negatives) > 20 else "")
        )
    return "\n".join(lines) + "\n"


def run(args):
    if not args.voc.is_dir():
        raise UserError(f"{args.voc}: dataset folder not found")
    given = _given_label_map(args.label_map)
    if (args.train_lists is None) != (args.val_lists is None):
        raise UserError("give both --train_lists and --val_lists, or neither")
    split_names = (
        None if args.train_lists is None else {"train": args.train_lists, "val": args.val_lists}
    )
    pairs, warnings = find_pairs(args.voc, split_names)
    if not pairs:
        raise UserError(f"{args.voc}: empty dataset, no image files found")
    entries, image_warnings = _check_all(args.voc, pairs, args.threads)
    label_map, label_warnings = _label_map(entries, given, args.voc)
    warnings += image_warnings + label_warnings
    entries = [entry._replace(image_id=image_id) for image_id, entry in enumerate(entries, start=1)]
    with (
        atomic_output(args.annotations) as table,
        atomic_output(args.label_map_output) as label_map_file,
        atomic_output(args.report) as report,
    ):
        write_table(table, entries)
        write_label_map(label_map_file, label_map)
        report.write_text(_report_text(args.voc, entries, warnings), encoding="utf-8")
    log.info(
        "%d images, %d objects, %d classes, %d warnings (see %s)",
        len(entries),
        sum(len(entry.objects) for entry in entries),
        len(label_map),
        len(warnings),
        args.report,
    )
