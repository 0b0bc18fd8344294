"""COCO box metrics with pycocotools: the twelve summary numbers, per-class AP and PR curves.

Detections use the COCO results format: dicts with `image_id`, `category_id`,
`bbox` [x, y, w, h] in pixels and `score`. Classes are named through their category ids, never
through their position (the original tool reported per-class AP one class off).
"""

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from efficientdet.errors import UserError

METRIC_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

log = logging.getLogger(__name__)


@dataclass
class CocoEvaluation:
    """Results of one evaluation.

    `precision` is pycocotools' [iou, recall, class] table for all areas and 100 detections,
    with -1 where a class has no ground truth; `recall_thresholds` its recall axis.
    """

    metrics: dict
    per_class: list
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    precision: np.ndarray
    summary_text: str


def load_ground_truth(path):
    """The COCO ground truth at `path`, checked to hold images and categories."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ground truth file not found")
    try:
        dataset = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable COCO JSON file ({error})") from error
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise UserError(f"{path}: missing COCO list '{key}'")
    if not dataset["images"]:
        raise UserError(f"{path}: the validation split is empty (no images)")
    if not dataset["categories"]:
        raise UserError(f"{path}: no categories")
    ground_truth = COCO()
    ground_truth.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
    return ground_truth


def category_names(ground_truth):
    """{category id: name} of the ground truth."""
    return {category["id"]: category["name"] for category in ground_truth.dataset["categories"]}


def evaluate_detections(ground_truth, detections, image_ids=None):
    """COCO-evaluates `detections` on `image_ids` (default: every ground-truth image)."""
    image_ids = sorted(ground_truth.getImgIds() if image_ids is None else set(image_ids))
    unknown = set(image_ids) - set(ground_truth.getImgIds())
    unknown |= {detection["image_id"] for detection in detections} - set(image_ids)
    if unknown:
        raise UserError(
            f"image ids {sorted(unknown)[:5]} are not among the evaluated ground-truth images "
            "(records and ground truth come from different datasets?)"
        )
    unknown_categories = {d["category_id"] for d in detections} - set(ground_truth.getCatIds())
    if unknown_categories:
        raise UserError(
            f"detections of category ids {sorted(unknown_categories)} that the ground truth "
            "does not define (label map mismatch between model and dataset?)"
        )
    evaluator = COCOeval(ground_truth, _detections_api(ground_truth, detections), iouType="bbox")
    evaluator.params.imgIds = image_ids
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # All area ranges, at most 100 detections per image.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    return CocoEvaluation(
        metrics={name: _metric(value) for name, value in zip(METRIC_NAMES, evaluator.stats)},
        per_class=_per_class(ground_truth, evaluator, precision, image_ids),
        iou_thresholds=evaluator.params.iouThrs,
        recall_thresholds=evaluator.params.recThrs,
        precision=precision,
        summary_text=_summary_lines(output.getvalue()),
    )


def _detections_api(ground_truth, detections):
    if detections:
        with contextlib.redirect_stdout(io.StringIO()):
            return ground_truth.loadRes([dict(detection) for detection in detections])
    # pycocotools' loadRes cannot take an empty list; nothing detected is a valid result.
    empty = COCO()
    empty.dataset = {
        "images": ground_truth.dataset["images"],
        "categories": ground_truth.dataset["categories"],
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        empty.createIndex()
    return empty


def _per_class(ground_truth, evaluator, precision, image_ids):
    names = category_names(ground_truth)
    counts = _ground_truth_counts(ground_truth, image_ids)
    rows = []
    for index, category_id in enumerate(evaluator.params.catIds):
        class_precision = precision[:, :, index]
        rows.append(
            {
                "id": int(category_id),
                "name": names[category_id],
                "num_ground_truth": counts.get(category_id, 0),
                "AP": _mean_defined(class_precision),
                "AP50": _mean_defined(class_precision[0]),
            }
        )
    return rows


def _ground_truth_counts(ground_truth, image_ids):
    counts = {}
    for annotation in ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=image_ids)):
        if not annotation.get("iscrowd", 0):
            counts[annotation["category_id"]] = counts.get(annotation["category_id"], 0) + 1
    return counts


def _mean_defined(precision):
    """Mean over the defined entries; None for a class without ground truth."""
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else None


def _metric(value):
    """pycocotools writes -1 where a metric is undefined (no ground truth of that size)."""
    return float(value) if value > -1 else None


def _summary_lines(printed):
    return "\n".join(line for line in printed.splitlines() if line.lstrip().startswith("Average"))
