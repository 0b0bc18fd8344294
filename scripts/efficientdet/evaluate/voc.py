"""PASCAL VOC-style average precision at IoU 0.5, per class.

Matching follows the VOC devkit: detections of a class, highest score first, each take the
ground-truth box of their image they overlap most; at IoU >= 0.5 that is a true positive unless
the box was already taken (a duplicate: false positive) or is marked difficult/crowd/ignore
(neither true nor false). AP is the area under the monotone precision envelope at every recall
step (VOC2010 onwards, "all-point"); `use_11_point` gives VOC2007's 11-point mean instead.
"""

from collections import defaultdict

import numpy as np
from pycocotools import mask as mask_utils

IGNORE_KEYS = ("difficult", "iscrowd", "ignore")


def voc_ap(recall, precision, use_11_point=False):
    """AP from the recall and precision after each detection (in score order)."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_11_point:
        return float(
            np.mean(
                [
                    precision[recall >= threshold].max(initial=0.0)
                    for threshold in np.linspace(0.0, 1.0, 11)
                ]
            )
        )
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def voc_ap_per_class(annotations, detections, category_ids, iou_threshold=0.5, use_11_point=False):
    """{category id: AP} (None for a class without counted ground truth).

    `annotations`: COCO ground-truth dicts of the evaluated images; `detections`: COCO result
    dicts.
    """
    return {
        category_id: _class_ap(
            [a for a in annotations if a["category_id"] == category_id],
            [d for d in detections if d["category_id"] == category_id],
            iou_threshold,
            use_11_point,
        )
        for category_id in category_ids
    }


def _class_ap(annotations, detections, iou_threshold, use_11_point):
    num_counted = sum(not _ignored(annotation) for annotation in annotations)
    if num_counted == 0:
        return None
    ground_truth_by_image = defaultdict(list)
    for annotation in annotations:
        ground_truth_by_image[annotation["image_id"]].append(annotation)
    detections_by_image = defaultdict(list)
    for detection in detections:
        detections_by_image[detection["image_id"]].append(detection)

    scores, outcomes = [], []
    for image_id, image_detections in detections_by_image.items():
        image_detections = sorted(image_detections, key=lambda d: -d["score"])
        scores += [d["score"] for d in image_detections]
        outcomes += _match_image(image_detections, ground_truth_by_image[image_id], iou_threshold)
    if not scores:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    outcomes = np.asarray(outcomes)[order]
    outcomes = outcomes[outcomes != 0]
    true_positives = np.cumsum(outcomes == 1)
    false_positives = np.cumsum(outcomes == -1)
    recall = true_positives / num_counted
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    return voc_ap(recall, precision, use_11_point)


def _match_image(detections, ground_truth, iou_threshold):
    """+1 true positive, -1 false positive, 0 ignored, per detection in the given order."""
    if not ground_truth:
        return [-1] * len(detections)
    overlaps = mask_utils.iou(
        [d["bbox"] for d in detections],
        [g["bbox"] for g in ground_truth],
        [0] * len(ground_truth),
    )
    taken = [False] * len(ground_truth)
    outcomes = []
    for row in np.atleast_2d(overlaps):
        best = int(np.argmax(row))
        if row[best] < iou_threshold:
            outcomes.append(-1)
        elif _ignored(ground_truth[best]):
            outcomes.append(0)
        elif taken[best]:
            outcomes.append(-1)
        else:
            taken[best] = True
            outcomes.append(1)
    return outcomes


def _ignored(annotation):
    return any(annotation.get(key) for key in IGNORE_KEYS)
