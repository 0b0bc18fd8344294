"""`efficientdet export_report`: what an export folder holds and how well its formats agree.

Writes:

    --formats          per exported file: its backend, size in bytes, and how its detections on
                       the first --num_images images match the SavedModel's: for each SavedModel
                       detection scoring >= --min_score, the box of its class in this format
                       that overlaps it most (mean and lowest IoU, largest score difference)
    --pr_curves        the exported checkpoint's precision-recall plot, from --eval_dir
    --per_class        the exported checkpoint's COCO AP, AP50 and VOC AP50 per class, from its
                       evaluation in --eval_dir
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from efficientdet.atomic import atomic_output
from efficientdet.data.image_files import find_images
from efficientdet.errors import UserError
from efficientdet.export.metadata import read_metadata
from efficientdet.infer.backends import EXPORT_DEFAULT, load_backend
from efficientdet.infer.infer import decoded_images, detect_images

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
    parser.add_argument(
        "--min_score",
        type=float,
        default=0.3,
        help="SavedModel detections scoring less are not compared; default 0.3",
    )
    parser.add_argument("--formats", required=True, type=Path, help="CSV table of the files")
    parser.add_argument(
        "--pr_curves", required=True, type=Path, help="PNG: the exported checkpoint's PR curves"
    )
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
    formats = format_table(args.export_dir, metadata, images[: args.num_images], args.min_score)
    evaluation = args.eval_dir / f"ckpt-{metadata['step']}"
    classes = per_class_table(evaluation.with_suffix(".json"))
    if not evaluation.with_suffix(".png").is_file():
        raise UserError(
            f"{evaluation.with_suffix('.png')}: no PR curves of the exported checkpoint"
        )
    for table, path in ((formats, args.formats), (classes, args.per_class)):
        with atomic_output(path) as temporary:
            table.to_csv(temporary, index=False, float_format="%.4f")
    with atomic_output(args.pr_curves) as temporary:
        shutil.copyfile(evaluation.with_suffix(".png"), temporary)
    log.info(
        "%d exported files compared on %d images -> %s",
        len(formats),
        min(len(images), args.num_images),
        args.formats,
    )


def format_table(export_dir, metadata, images, min_score):
    reference = detect_images(load_backend(export_dir / EXPORT_DEFAULT), images)
    rows = []
    for name in metadata["files"]:
        path = export_dir / name
        row = {"file": name, "size_bytes": size_bytes(path)}
        if name.endswith((".pb", ".tflite", ".onnx")) or name == EXPORT_DEFAULT:
            backend = load_backend(path)
            row.update(
                {
                    "backend": backend.kind,
                    **agreement(reference, detect_images(backend, images), min_score),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def size_bytes(path):
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(item.stat().st_size for item in files if item.is_file())


def agreement(reference, found, min_score):
    """How the detections `found` match the `reference` ones (lists of per-image detections):
    each reference detection scoring >= min_score is matched to the found box of its class
    that overlaps it most. By overlap, not by rank: equal scores may come in any order."""
    ious, score_differences = [], []
    for expected, actual in zip(reference, found):
        confident = expected["scores"] >= min_score
        for box, score, label in zip(
            expected["boxes"][confident],
            expected["scores"][confident],
            expected["classes"][confident],
        ):
            same_class = actual["classes"] == label
            if not same_class.any():
                ious.append(0.0)
                continue
            boxes, scores = actual["boxes"][same_class], actual["scores"][same_class]
            overlaps = box_iou(np.repeat(box[None], len(boxes), 0), boxes)
            differences = np.abs(scores - score)
            # Soft-NMS keeps copies of a box with decayed scores: of equal overlaps, the closest
            # score is the twin.
            best = np.lexsort((differences, -overlaps))[0]
            ious.append(float(overlaps[best]))
            score_differences.append(float(differences[best]))
    return {
        "compared": len(ious),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "min_iou": float(np.min(ious)) if ious else None,
        "max_score_difference": max(score_differences, default=None),
    }


def box_iou(first, second):
    """IoU of paired yxyx boxes (row i of `first` with row i of `second`)."""
    top_left = np.maximum(first[:, :2], second[:, :2])
    bottom_right = np.minimum(first[:, 2:], second[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    areas = [np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) for boxes in (first, second)]
    union = areas[0] + areas[1] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 1.0)


def per_class_table(path):
    """The per-class rows of an evaluation written by `efficientdet evaluate_checkpoint`."""
    try:
        per_class = json.loads(path.read_text())["per_class"]
    except FileNotFoundError:
        raise UserError(f"{path}: the exported checkpoint was not evaluated") from None
    except (ValueError, KeyError) as error:
        raise UserError(f"{path}: not an evaluation ({error!r})") from None
    return pd.DataFrame(per_class, columns=CLASS_COLUMNS)
