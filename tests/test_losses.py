"""Losses against direct numpy formulas and hand-computed IoU values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.anchors import encode_boxes, generate_anchors
from efficientdet.train.losses import (
    box_iou,
    detection_loss,
    focal_loss,
    huber_loss,
    iou_loss,
    weighted_focal_loss_sum,
)


def numpy_focal(logits, targets, alpha, gamma, label_smoothing=0.0):
    prob = 1 / (1 + np.exp(-logits))
    p_t = np.where(targets == 1, prob, 1 - prob)
    alpha_t = np.where(targets == 1, alpha, 1 - alpha)
    smoothed = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    cross_entropy = -(smoothed * np.log(prob) + (1 - smoothed) * np.log(1 - prob))
    return alpha_t * (1 - p_t) ** gamma * cross_entropy


def numpy_huber(outputs, targets, delta):
    error = np.abs(outputs - targets)
    return np.where(error <= delta, 0.5 * error**2, delta * error - 0.5 * delta**2)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_focal_loss_matches_formula(label_smoothing):
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(4, 7)).astype(np.float32)
    targets = (rng.random((4, 7)) < 0.3).astype(np.float32)
    loss = focal_loss(logits, targets, 0.25, 1.5, label_smoothing).numpy()
    np.testing.assert_allclose(
        loss, numpy_focal(logits, targets, 0.25, 1.5, label_smoothing), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("gamma, label_smoothing", [(1.5, 0.0), (1.5, 0.1), (0.0, 0.0), (0.5, 0.1)])
def test_weighted_focal_loss_sum_and_its_fused_gradient_are_exact(gamma, label_smoothing):
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(2, 50, 6))
    logits[0, :4] = [[-40.0], [40.0], [-17.0], [17.0]]  # saturated sigmoids, both signs
    labels = rng.integers(-1, 6, (2, 50))
    weights = (rng.random((2, 50, 1)) < 0.8).astype(np.float32)
    options = dict(alpha=0.25, gamma=gamma, label_smoothing=label_smoothing)

    def value_and_gradient(loss, dtype):
        x = tf.constant(logits, dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(x, tf.one_hot(labels, 6, dtype=dtype), tf.constant(weights, dtype))
        return value.numpy(), tape.gradient(value, x).numpy()

    # The exact values: TensorFlow's own gradient of the formula, in float64.
    want, want_gradient = value_and_gradient(
        lambda x, targets, weights: tf.reduce_sum(focal_loss(x, targets, **options) * weights),
        tf.float64,
    )
    got, got_gradient = value_and_gradient(
        lambda x, targets, weights: weighted_focal_loss_sum(x, targets, weights, **options),
        tf.float32,
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(np.isfinite(got_gradient))
    # Beyond |logit| 15, 1 - p_t cancels in float32, in this loss as in the original's.
    moderate = np.abs(logits) < 15
    np.testing.assert_allclose(
        got_gradient[moderate], want_gradient[moderate], rtol=1e-3, atol=1e-6
    )


def test_huber_loss_matches_formula():
    outputs = np.array([[0.0, 0.05, -0.3, 1.0]], np.float32)
    targets = np.array([[0.02, 0.0, 0.0, 0.5]], np.float32)
    np.testing.assert_allclose(
        huber_loss(outputs, targets, 0.1).numpy(), numpy_huber(outputs, targets, 0.1), rtol=1e-5
    )


def test_giou_hand_values():
    pred = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    target = tf.constant([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
    # Overlap 1, union 7, enclosing 3 x 3; disjoint unit boxes: enclosing 9, union 2.
    expected = [1 / 7 - 2 / 9, 0.0 - 7 / 9]
    np.testing.assert_allclose(box_iou(pred, target, "giou").numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        iou_loss(pred, target, "giou").numpy(), 1 - np.array(expected), rtol=1e-6
    )


def test_ciou_hand_values():
    pred = tf.constant([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 4.0]])
    target = tf.constant([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    # Same aspect ratio: centre distance^2 2, enclosing diagonal^2 18, v = 0.
    first = 1 / 7 - 2 / 18
    # IoU 1/2, centres (1, 2) and (1, 1), diagonal^2 4 + 16, v = 4/pi^2 (atan(1) - atan(2))^2.
    v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    second = 0.5 - 1 / 20 - v / (0.5 + v) * v
    np.testing.assert_allclose(box_iou(pred, target, "ciou").numpy(), [first, second], rtol=1e-6)
    np.testing.assert_allclose(
        iou_loss(pred, target, "ciou").numpy(), [1 - first, 1 - second], rtol=1e-6
    )


def test_identical_boxes_have_no_iou_loss():
    boxes = tf.constant([[1.0, 2.0, 5.0, 9.0]])
    for iou_type in ("giou", "ciou"):
        np.testing.assert_allclose(iou_loss(boxes, boxes, iou_type).numpy(), [0.0], atol=1e-6)


def head_outputs(flat, sizes, values_per_anchor):
    """Splits [B, N, K] (anchor order) into head-shaped levels [B, h, w, A * K]."""
    outputs, start = [], 0
    for h, w, anchors_per_cell in sizes:
        count = h * w * anchors_per_cell
        level = flat[:, start : start + count]
        outputs.append(
            tf.constant(level.reshape(flat.shape[0], h, w, anchors_per_cell * values_per_anchor))
        )
        start += count
    return outputs


def test_detection_loss_matches_numpy_composition():
    rng = np.random.default_rng(2)
    sizes = [(4, 4, 2), (2, 2, 2)]
    num_anchors, num_classes, batch = 40, 3, 2
    logits = rng.normal(size=(batch, num_anchors, num_classes)).astype(np.float32)
    deltas = rng.normal(scale=0.2, size=(batch, num_anchors, 4)).astype(np.float32)
    cls_targets = rng.choice([-2, -1, -1, -1, 0, 1, 2], size=(batch, num_anchors)).astype(np.int32)
    box_targets = rng.normal(scale=0.2, size=(batch, num_anchors, 4)).astype(np.float32)
    box_targets[cls_targets < 0] = 0.0
    num_positives = (cls_targets >= 0).sum(axis=1).astype(np.float32)

    total, class_loss, box_loss = detection_loss(
        head_outputs(logits, sizes, num_classes),
        head_outputs(deltas, sizes, 4),
        cls_targets,
        box_targets,
        num_positives,
    )
    normalizer = num_positives.sum() + 1
    one_hot = np.eye(num_classes)[np.maximum(cls_targets, 0)] * (cls_targets >= 0)[..., None]
    focal = numpy_focal(logits, one_hot, 0.25, 1.5) * (cls_targets != -2)[..., None]
    expected_class = focal.sum() / normalizer
    huber = numpy_huber(deltas, box_targets, 0.1) * (cls_targets >= 0)[..., None]
    expected_box = huber.sum() / (normalizer * 4)
    np.testing.assert_allclose(class_loss.numpy(), expected_class, rtol=1e-5)
    np.testing.assert_allclose(box_loss.numpy(), expected_box, rtol=1e-5)
    np.testing.assert_allclose(total.numpy(), expected_class + 50 * expected_box, rtol=1e-5)


def test_detection_loss_with_iou_term():
    anchors = generate_anchors((32, 32), 3, 3, 1, ((1.0, 1.0),), 1.0)
    sizes = [(4, 4, 1)]
    target_box = np.array([[8.0, 8.0, 16.0, 16.0]], np.float32)
    pred_box = np.array([[8.0, 8.0, 16.0, 20.0]], np.float32)
    cls_targets = np.full((1, 16), -1, np.int32)
    cls_targets[0, 5] = 0
    box_targets = np.zeros((1, 16, 4), np.float32)
    box_targets[0, 5] = encode_boxes(target_box, anchors[5:6]).numpy()
    deltas = np.full((1, 16, 4), 50.0, np.float32)  # huge outputs on negatives must not leak in
    deltas[0, 5] = encode_boxes(pred_box, anchors[5:6]).numpy()
    logits = np.zeros((1, 16, 1), np.float32)

    common = (
        head_outputs(logits, sizes, 1),
        head_outputs(deltas, sizes, 4),
        cls_targets,
        box_targets,
        [1.0],
    )
    plain_total, _, _ = detection_loss(*common)
    total, _, _ = detection_loss(*common, iou_loss_type="giou", anchors=anchors)
    # IoU 64/96, enclosing box = union: GIoU = 2/3; normaliser (1 + 1) * 4.
    np.testing.assert_allclose(total.numpy() - plain_total.numpy(), (1 - 2 / 3) / 8, rtol=1e-4)
    assert np.isfinite(detection_loss(*common, iou_loss_type="ciou", anchors=anchors)[0].numpy())


def test_detection_loss_gradients_are_finite_under_tf_function():
    anchors = generate_anchors((32, 32), 3, 3, 1, ((1.0, 1.0),), 1.0)
    cls_outputs = [tf.Variable(tf.zeros([2, 4, 4, 3]))]
    box_outputs = [tf.Variable(tf.fill([2, 4, 4, 4], 30.0))]
    cls_targets = tf.constant(np.where(np.arange(32).reshape(2, 16) == 5, 1, -1), tf.int32)
    box_targets = tf.zeros([2, 16, 4])

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            total, _, _ = detection_loss(
                cls_outputs,
                box_outputs,
                cls_targets,
                box_targets,
                tf.constant([1.0, 1.0]),
                iou_loss_type="ciou",
                anchors=anchors,
            )
        return tape.gradient(total, cls_outputs + box_outputs)

    for gradient in gradients():
        assert np.isfinite(gradient.numpy()).all()


def test_iou_and_diou_hand_values():
    pred = tf.constant([[0.0, 0.0, 2.0, 4.0]])
    target = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    np.testing.assert_allclose(box_iou(pred, target, "iou").numpy(), [0.5], rtol=1e-6)
    np.testing.assert_allclose(box_iou(pred, target, "diou").numpy(), [0.5 - 1 / 20], rtol=1e-6)
    with pytest.raises(ValueError, match="iou type"):
        box_iou(pred, target, "eiou")
