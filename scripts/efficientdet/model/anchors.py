"""Anchors, the box coder and the anchor labeler (matcher), as in google/automl.

Anchors are ordered level by level, then row, column, then anchor (scale-major over the
(scale, aspect) pairs), which is the order obtained by reshaping a head output
[B, h, w, A * K] to [B, h * w * A, K] and concatenating the levels (`merge_levels`).
Everything here is made of TensorFlow ops, usable inside tf.data and exported graphs.
"""

import numpy as np
import tensorflow as tf
from keras.utils import bounding_boxes

BOX_FORMAT = "yxyx"
ENCODING = "center_yxhw"  # deltas (ty, tx, th, tw), the automl order
IGNORE = -2
BACKGROUND = -1


def feature_sizes(image_size, max_level):
    """(height, width) of every level 0..max_level: each level halves the previous, rounding up."""
    sizes = [tuple(int(side) for side in image_size)]
    for _ in range(max_level):
        sizes.append(tuple((side - 1) // 2 + 1 for side in sizes[-1]))
    return sizes


def _aspect_factors(aspect):
    """(x, y) size factors: a pair as given, or a width/height ratio r as (sqrt(r), 1/sqrt(r))."""
    if np.ndim(aspect) == 1:
        return tuple(aspect)
    return np.sqrt(aspect), 1.0 / np.sqrt(aspect)


def generate_anchors(image_size, min_level, max_level, num_scales, aspect_ratios, anchor_scale):
    """Anchor boxes float32 [N, 4] yxyx in pixels for an image of `image_size` (height, width).

    aspect_ratios: (x, y) factor pairs such as (1.4, 0.7), or width/height ratios (automl's
    later float form).
    """
    sizes = feature_sizes(image_size, max_level)
    image_h, image_w = sizes[0]
    levels = []
    for level in range(min_level, max_level + 1):
        feat_h, feat_w = sizes[level]
        stride_y, stride_x = image_h / feat_h, image_w / feat_w
        centers_y = stride_y / 2 + stride_y * np.arange(feat_h)
        centers_x = stride_x / 2 + stride_x * np.arange(feat_w)
        center_x, center_y = np.meshgrid(centers_x, centers_y)
        half_sizes = []
        for octave in range(num_scales):
            for aspect in aspect_ratios:
                aspect_x, aspect_y = _aspect_factors(aspect)
                base = anchor_scale * 2 ** (octave / num_scales)
                half_sizes.append((base * stride_y * aspect_y / 2, base * stride_x * aspect_x / 2))
        half_y, half_x = np.array(half_sizes).T
        center_y = center_y.reshape(-1, 1)
        center_x = center_x.reshape(-1, 1)
        boxes = np.stack(
            [center_y - half_y, center_x - half_x, center_y + half_y, center_x + half_x], axis=-1
        )
        levels.append(boxes.reshape(-1, 4))
    return tf.constant(np.concatenate(levels), tf.float32)


def flatten_levels(level_outputs, values_per_anchor):
    """Head outputs (list over levels of [B, h, w, A * K]) -> list of [B, h * w * A, K]."""
    flat = []
    for out in level_outputs:
        # With its size known, a level keeps its anchor count under an unknown batch size
        # (serving), which postprocess' candidate selection needs.
        size = out.shape[1:].num_elements()
        if size is None:
            flat.append(tf.reshape(out, [tf.shape(out)[0], -1, values_per_anchor]))
        else:
            flat.append(tf.reshape(out, [-1, size // values_per_anchor, values_per_anchor]))
    return flat


def merge_levels(level_outputs, values_per_anchor):
    """Head outputs (list over levels of [B, h, w, A * K]) -> [B, N, K] in anchor order."""
    return tf.concat(flatten_levels(level_outputs, values_per_anchor), axis=1)


def head_levels(cls_outputs, box_outputs):
    """The model's (class, box) head outputs -> (logits: list over levels of [B, N_l, C],
    deltas [B, N, 4]), float32."""
    num_anchors = box_outputs[0].shape[-1] // 4
    num_classes = cls_outputs[0].shape[-1] // num_anchors
    levels = [tf.cast(level, tf.float32) for level in flatten_levels(cls_outputs, num_classes)]
    return levels, tf.cast(merge_levels(box_outputs, 4), tf.float32)


def merge_head_outputs(cls_outputs, box_outputs):
    """The model's (class, box) head outputs -> (logits [B, N, C], deltas [B, N, 4]), float32."""
    levels, deltas = head_levels(cls_outputs, box_outputs)
    return tf.concat(levels, axis=1), deltas


def encode_boxes(boxes, anchors):
    """Boxes [..., N, 4] yxyx -> automl deltas (ty, tx, th, tw) relative to anchors [N, 4]."""
    return bounding_boxes.encode_box_to_deltas(
        anchors, boxes, anchor_format=BOX_FORMAT, box_format=BOX_FORMAT, encoding_format=ENCODING
    )


def decode_boxes(deltas, anchors):
    """Deltas [..., N, 4] (ty, tx, th, tw) -> boxes yxyx, inverse of `encode_boxes`."""
    return bounding_boxes.decode_deltas_to_boxes(
        anchors, deltas, anchor_format=BOX_FORMAT, box_format=BOX_FORMAT, encoded_format=ENCODING
    )


class AnchorLabeler:
    """Assigns ground-truth boxes to anchors (automl's ArgMaxMatcher with force match).

    An anchor whose best IoU is >= match_threshold is positive; below unmatched_threshold it is
    background; in between it is ignored. Every ground-truth box also claims its best anchor
    (when that IoU is > 0), the lowest box index winning a tie. Rows with label id <= 0 are
    padding and take no part.
    """

    def __init__(self, anchors, num_classes, match_threshold=0.5, unmatched_threshold=0.5):
        self.anchors = tf.convert_to_tensor(anchors, tf.float32)
        self.num_classes = num_classes
        self.match_threshold = match_threshold
        self.unmatched_threshold = unmatched_threshold

    def label(self, gt_boxes, gt_label_ids):
        """(cls_targets [N] int32, box_targets [N, 4] float32, num_positives float32)."""
        gt_boxes = tf.cast(tf.reshape(gt_boxes, [-1, 4]), tf.float32)
        gt_label_ids = tf.cast(tf.reshape(gt_label_ids, [-1]), tf.int32)
        # A padding row that never matches keeps the arg-max reductions defined without boxes.
        gt_boxes = tf.concat([gt_boxes, tf.zeros([1, 4])], axis=0)
        gt_label_ids = tf.concat([gt_label_ids, [0]], axis=0)
        valid = gt_label_ids > 0

        iou = bounding_boxes.compute_iou(gt_boxes, self.anchors, bounding_box_format=BOX_FORMAT)
        iou = tf.where(valid[:, tf.newaxis], iou, -1.0)

        best_gt = tf.argmax(iou, axis=0, output_type=tf.int32)
        best_iou = tf.reduce_max(iou, axis=0)
        forced_gt, forced = self._force_matches(iou, valid)
        matched_gt = tf.where(forced, forced_gt, best_gt)
        positive = forced | (best_iou >= self.match_threshold)
        ignored = ~positive & (best_iou >= self.unmatched_threshold)

        matched_labels = tf.gather(gt_label_ids, matched_gt) - 1
        cls_targets = tf.where(positive, matched_labels, tf.where(ignored, IGNORE, BACKGROUND))
        encoded = encode_boxes(tf.gather(gt_boxes, matched_gt), self.anchors)
        box_targets = tf.where(positive[:, tf.newaxis], encoded, 0.0)
        num_positives = tf.reduce_sum(tf.cast(positive, tf.float32))
        return cls_targets, box_targets, num_positives

    @staticmethod
    def _force_matches(iou, valid):
        """Per anchor: the ground truth claiming it as its best anchor, and whether one does."""
        best_anchor = tf.argmax(iou, axis=1, output_type=tf.int32)
        claims = tf.cast(valid & (tf.reduce_max(iou, axis=1) > 0.0), tf.float32)
        claim_matrix = tf.one_hot(best_anchor, tf.shape(iou)[1]) * claims[:, tf.newaxis]
        forced_gt = tf.argmax(claim_matrix, axis=0, output_type=tf.int32)
        forced = tf.reduce_max(claim_matrix, axis=0) > 0.0
        return forced_gt, forced
