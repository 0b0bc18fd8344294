"""Detection losses as in google/automl: focal loss, Huber box loss and IoU box losses.

Keras' binary_focal_crossentropy is not used: it applies label smoothing before the focal
factor and computes the cross-entropy from clipped probabilities, where automl applies the
focal factor to the unsmoothed labels and uses the logits directly. Keras has no GIoU, and
its compute_ciou adds epsilons to heights and unions; the IoU terms are written here with
automl's divide-no-nan semantics, centre distances taken per box (automl's DIoU/CIoU take one
norm over all boxes) and the CIoU trade-off alpha held constant in the gradient, as the paper.
"""

import math

import keras
import tensorflow as tf

from efficientdet.model.anchors import IGNORE, decode_boxes, merge_head_outputs

IOU_LOSS_TYPES = ("iou", "giou", "diou", "ciou")


def focal_loss(logits, targets, alpha=0.25, gamma=1.5, label_smoothing=0.0):
    """Element-wise sigmoid focal loss; `targets` are one-hot, same shape as `logits`."""
    _, p_t, alpha_factor, _, cross_entropy = _focal_terms(logits, targets, alpha, label_smoothing)
    return alpha_factor * (1.0 - p_t) ** gamma * cross_entropy


def _focal_terms(logits, targets, alpha, label_smoothing):
    """Element-wise: sigmoid(logits), p_t, alpha_t, the smoothed labels, the cross-entropy."""
    probs = tf.sigmoid(logits)
    p_t = targets * probs + (1.0 - targets) * (1.0 - probs)
    alpha_factor = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    smoothed = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=smoothed, logits=logits)
    return probs, p_t, alpha_factor, smoothed, cross_entropy


def weighted_focal_loss_sum(logits, targets, weights, alpha=0.25, gamma=1.5, label_smoothing=0.0):
    """sum(focal_loss(logits, targets) * weights), `weights` broadcast against `logits`.

    The class loss covers every anchor and class, so TensorFlow's gradient of it is a chain of
    about twenty elementwise passes over [B, N, classes]. Here one XLA kernel computes the loss
    and its gradient in a single pass. For one-hot targets t, with p = sigmoid(logits) and s the
    smoothed labels, the focal loss' derivative simplifies to
    alpha_t (1 - p_t)^gamma ((p - s) - gamma (p + t - 1) cross_entropy), finite for any gamma.
    """

    @tf.custom_gradient
    def summed(logits):
        per_anchor, gradient = _focal_loss_and_gradient(
            logits, targets, weights, alpha, gamma, label_smoothing
        )
        # Summed over classes in the kernel, over anchors here: TensorFlow's sum is the more
        # exact one for millions of terms.
        return tf.reduce_sum(per_anchor), lambda upstream: upstream * gradient

    return summed(logits)


@tf.function(jit_compile=True, reduce_retracing=True)
def _focal_loss_and_gradient(logits, targets, weights, alpha, gamma, label_smoothing):
    probs, p_t, alpha_factor, smoothed, cross_entropy = _focal_terms(
        logits, targets, alpha, label_smoothing
    )
    weighted_modulation = weights * alpha_factor * (1.0 - p_t) ** gamma
    per_anchor = tf.reduce_sum(weighted_modulation * cross_entropy, axis=-1)
    slope = (probs - smoothed) - gamma * (probs + targets - 1.0) * cross_entropy
    return per_anchor, weighted_modulation * slope


def huber_loss(box_outputs, box_targets, delta=0.1):
    """Element-wise Huber loss between box deltas, same shape as the inputs."""
    return keras.losses.huber(
        box_targets[..., tf.newaxis], box_outputs[..., tf.newaxis], delta=delta
    )


def _box_geometry(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
    height = tf.maximum(ymax - ymin, 0.0)
    width = tf.maximum(xmax - xmin, 0.0)
    return ymin, xmin, ymax, xmax, height, width


def box_iou(pred_boxes, target_boxes, iou_type):
    """Element-wise IoU variant (one of IOU_LOSS_TYPES) between yxyx boxes [..., 4]."""
    if iou_type not in IOU_LOSS_TYPES:
        raise ValueError(f"iou type must be one of {IOU_LOSS_TYPES}, got {iou_type!r}")
    p_ymin, p_xmin, p_ymax, p_xmax, p_h, p_w = _box_geometry(pred_boxes)
    t_ymin, t_xmin, t_ymax, t_xmax, t_h, t_w = _box_geometry(target_boxes)
    inter_h = tf.maximum(tf.minimum(p_ymax, t_ymax) - tf.maximum(p_ymin, t_ymin), 0.0)
    inter_w = tf.maximum(tf.minimum(p_xmax, t_xmax) - tf.maximum(p_xmin, t_xmin), 0.0)
    intersection = inter_h * inter_w
    union = p_h * p_w + t_h * t_w - intersection
    iou = tf.math.divide_no_nan(intersection, union)
    if iou_type == "iou":
        return iou
    enclose_h = tf.maximum(p_ymax, t_ymax) - tf.minimum(p_ymin, t_ymin)
    enclose_w = tf.maximum(p_xmax, t_xmax) - tf.minimum(p_xmin, t_xmin)
    if iou_type == "giou":
        enclose_area = enclose_h * enclose_w
        return iou - tf.math.divide_no_nan(enclose_area - union, enclose_area)
    center_dy = (p_ymin + p_ymax - t_ymin - t_ymax) / 2
    center_dx = (p_xmin + p_xmax - t_xmin - t_xmax) / 2
    diou = iou - tf.math.divide_no_nan(center_dy**2 + center_dx**2, enclose_h**2 + enclose_w**2)
    if iou_type == "diou":
        return diou
    angle_gap = tf.atan(tf.math.divide_no_nan(t_w, t_h)) - tf.atan(tf.math.divide_no_nan(p_w, p_h))
    v = 4.0 / math.pi**2 * angle_gap**2
    alpha = tf.stop_gradient(tf.math.divide_no_nan(v, 1.0 - iou + v))
    return diou - alpha * v


def iou_loss(pred_boxes, target_boxes, iou_type):
    """Element-wise 1 - IoU variant (one of IOU_LOSS_TYPES) between yxyx boxes [..., 4]."""
    return 1.0 - box_iou(pred_boxes, target_boxes, iou_type)


def detection_loss(
    cls_outputs,
    box_outputs,
    cls_targets,
    box_targets,
    num_positives,
    *,
    alpha=0.25,
    gamma=1.5,
    delta=0.1,
    box_loss_weight=50.0,
    label_smoothing=0.0,
    iou_loss_type=None,
    iou_loss_weight=1.0,
    anchors=None,
):
    """(total, class_loss, box_loss) of a batch, normalised by its positives as automl.

    cls_outputs / box_outputs: the model's head outputs (lists over levels, see anchors.py).
    cls_targets [B, N] int32, box_targets [B, N, 4], num_positives [B]: AnchorLabeler outputs.
    Anchors labelled -2 add no class loss; only positives add box loss. With `iou_loss_type`
    (one of IOU_LOSS_TYPES) `anchors` are required and iou_loss_weight * IoU loss over the
    positives joins the total; box_loss stays the Huber loss.
    """
    logits, deltas = merge_head_outputs(cls_outputs, box_outputs)
    cls_targets = tf.cast(cls_targets, tf.int32)
    box_targets = tf.cast(box_targets, tf.float32)
    normalizer = tf.reduce_sum(tf.cast(num_positives, tf.float32)) + 1.0

    one_hot = tf.one_hot(cls_targets, logits.shape[-1], dtype=tf.float32)
    not_ignored = tf.cast(cls_targets != IGNORE, tf.float32)[..., tf.newaxis]
    class_loss = (
        weighted_focal_loss_sum(logits, one_hot, not_ignored, alpha, gamma, label_smoothing)
        / normalizer
    )

    positive = cls_targets >= 0
    positive_weight = tf.cast(positive, tf.float32)
    box_loss = tf.reduce_sum(
        huber_loss(deltas, box_targets, delta) * positive_weight[..., tf.newaxis]
    ) / (normalizer * 4.0)

    total = class_loss + box_loss_weight * box_loss
    if iou_loss_type:
        # Negatives decode zero deltas, so exp() of arbitrary outputs never reaches the loss.
        positive_deltas = tf.where(positive[..., tf.newaxis], deltas, 0.0)
        pred_boxes = decode_boxes(positive_deltas, anchors)
        per_anchor = iou_loss(pred_boxes, decode_boxes(box_targets, anchors), iou_loss_type)
        box_iou_loss = tf.reduce_sum(per_anchor * positive_weight) / (normalizer * 4.0)
        total += iou_loss_weight * box_iou_loss
    return total, class_loss, box_loss
