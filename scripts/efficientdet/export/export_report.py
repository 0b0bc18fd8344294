"""`efficientdet export_report`: what an export folder holds and how well its formats agree.

Writes two tables:

    --formats          per exported file: its backend, size in MiB, and its detections on the
                       first --num_images images next to the SavedModel's (count, mean and
                       lowest IoU of rank-aligned boxes, largest score difference)
    --per_class        the exported checkpoint's COCO AP, AP50 and VOC AP50 per class, from its
                       evaluation in --eval_dir (empty when that checkpoint was not evaluated)
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from efficientdet.atomic import atomic_output
from efficientdet.data.image_files import find_images
from efficientdet.errors import UserError
from efficientdet.export.metadata import read_metadata
from efficientdet.infer.backends import EXPORT_DEFAULT, load_backend
from efficientdet.infer.infer import decoded_images, detect_images

# Rank-aligned comparison of the top detections: beyond these, scores are near the NMS floor
# and their order among ties is arbitrary.
COMPARED_DETECTIONS = 20
CLASS_COLUMNS = ["id", "name", "num_ground_truth", "AP", "AP50", "VOC_AP50"]
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument(
        "--export_dir", required=True, type=Path, help="export folder (models/{run}/export)"
    )
    parser.add_argument(
        "--eval_dir",
        required=True,
        type=Path,
        help="per-checkpoint evaluations ckpt-{step}.json (results/{run}/eval)",
    )
    parser.add_argument(
        "--images",
        required=True,
        help="an image, a folder, a glob pattern, or a .txt list of paths",
    )
    parser.add_argument("--image_root", help="folder the paths of a .txt list are relative to")
    parser.add_argument(
        "--num_images", type=int, default=8, help="images the formats are compared on; default 8"
    )
    parser.add_argument("--formats", required=True, type=Path, help="CSV table of the files")
    parser.add_argument(
        "--per_class",
        required=True,
        type=Path,
        help="CSV table of the exported checkpoint's per-class AP",
    )


def run(args):
    if args.num_images < 1:
        raise UserError(f"--num_images={args.num_images}: must be at least 1")
    metadata = read_metadata(args.export_dir)
    images = [image for _, image in decoded_images(find_images(args.images, args.image_root))]
    if not images:
        raise UserError(f"--images={args.images}: no image decodes")
    formats = format_table(args.export_dir, metadata, images[: args.num_images])
    classes = per_class_table(args.eval_dir, metadata["step"])
    for table, path in ((formats, args.formats), (classes, args.per_class)):
        with atomic_output(path) as temporary:
            table.to_csv(temporary, index=False, float_format="%.4f")
    log.info(
        "%d exported files compared on %d images -> %s",
        len(formats),
        min(len(images), args.num_images),
        args.formats,
    )


def format_table(export_dir, metadata, images):
    reference = detect_images(load_backend(export_dir / EXPORT_DEFAULT), images)
    rows = []
    for name in metadata["files"]:
        path = export_dir / name
        row = {"file": name, "size_mib": size_bytes(path) / 2**20}
        if name.endswith((".pb", ".tflite", ".onnx")) or name == EXPORT_DEFAULT:
            backend = load_backend(path)
            row.update(
                {"backend": backend.kind, **agreement(reference, detect_images(backend, images))}
            )
        rows.append(row)
    return pd.DataFrame(rows)


def size_bytes(path):
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(item.stat().st_size for item in files if item.is_file())


def agreement(reference, found):
    """Detections of `found` next to `reference` (lists of per-image detections)."""
    ious, score_differences = [], []
    for expected, actual in zip(reference, found):
        count = min(len(expected["scores"]), len(actual["scores"]), COMPARED_DETECTIONS)
        ious += list(box_iou(expected["boxes"][:count], actual["boxes"][:count]))
        score_differences += list(abs(expected["scores"][:count] - actual["scores"][:count]))
    return {
        "detections": sum(len(image["scores"]) for image in found),
        "reference_detections": sum(len(image["scores"]) for image in reference),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "min_iou": float(np.min(ious)) if ious else None,
        "max_score_difference": float(np.max(score_differences)) if score_differences else None,
    }


def box_iou(first, second):
    """IoU of paired yxyx boxes (row i of `first` with row i of `second`)."""
    top_left = np.maximum(first[:, :2], second[:, :2])
    bottom_right = np.minimum(first[:, 2:], second[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    areas = [np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) for boxes in (first, second)]
    union = areas[0] + areas[1] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 1.0)


def per_class_table(eval_dir, step):
    path = Path(eval_dir) / f"ckpt-{step}.json"
    if not path.is_file():
        log.warning("%s: the exported checkpoint was not evaluated", path)
        return pd.DataFrame(columns=CLASS_COLUMNS)
    try:
        per_class = json.loads(path.read_text())["per_class"]
    except (ValueError, KeyError) as error:
        raise UserError(f"{path}: not an evaluation ({error!r})") from None
    return pd.DataFrame(per_class, columns=CLASS_COLUMNS)
