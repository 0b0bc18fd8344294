"""Anchors, box coder and anchor labeler against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.anchors import (
    AnchorLabeler,
    decode_boxes,
    encode_boxes,
    feature_sizes,
    generate_anchors,
    merge_levels,
)

ASPECTS = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
OCTAVE = 2 ** (1 / 3)


def d0_style_anchors(image_size):
    return generate_anchors(image_size, 3, 7, 3, ASPECTS, 4.0).numpy()


def test_first_level3_anchors_square_image():
    anchors = d0_style_anchors((128, 128))
    half = 4.0 * 8 / 2
    expected = [
        [4 - half, 4 - half, 4 + half, 4 + half],
        [4 - half * 0.7, 4 - half * 1.4, 4 + half * 0.7, 4 + half * 1.4],
        [4 - half * 1.4, 4 - half * 0.7, 4 + half * 1.4, 4 + half * 0.7],
        [4 - half * OCTAVE, 4 - half * OCTAVE, 4 + half * OCTAVE, 4 + half * OCTAVE],
    ]
    np.testing.assert_allclose(anchors[:4], expected, atol=1e-4)
    np.testing.assert_allclose(
        anchors[:2], [[-12, -12, 20, 20], [-7.2, -18.4, 15.2, 26.4]], atol=1e-4
    )
    # The next location is one stride to the right.
    np.testing.assert_allclose(anchors[9], [-12, -4, 20, 28], atol=1e-4)


def test_anchors_non_square_image():
    anchors = d0_style_anchors((96, 160))
    counts = [12 * 20, 6 * 10, 3 * 5, 2 * 3, 1 * 2]
    assert anchors.shape == (9 * sum(counts), 4)
    np.testing.assert_allclose(anchors[0], [-12, -12, 20, 20], atol=1e-4)
    # Level 3 row 0, last column: centre (4, 156).
    np.testing.assert_allclose(anchors[9 * 19], [-12, 140, 20, 172], atol=1e-4)
    # Level 7 is 1 x 2 cells: strides 96 (y) and 80 (x), centre (48, 40), size 384 x 320.
    level7 = anchors[-18:]
    np.testing.assert_allclose(level7[0], [-144, -120, 240, 200], atol=1e-3)
    np.testing.assert_allclose(level7[9], [-144, -40, 240, 280], atol=1e-3)


def test_feature_sizes_round_up():
    assert feature_sizes((100, 75), 4) == [(100, 75), (50, 38), (25, 19), (13, 10), (7, 5)]


@pytest.mark.parametrize("image_size", [(512, 512), (100, 75), (384, 640)])
def test_anchor_count_per_level(image_size):
    sizes = feature_sizes(image_size, 7)
    anchors = d0_style_anchors(image_size)
    assert anchors.shape[0] == sum(9 * h * w for h, w in sizes[3:8])
    # Each level's anchors span its whole grid: first and last centres half a stride inside.
    start = 0
    for level in range(3, 8):
        h, w = sizes[level]
        level_anchors = anchors[start : start + 9 * h * w]
        centers = (level_anchors[:, :2] + level_anchors[:, 2:]) / 2
        stride = np.array(image_size) / np.array([h, w])
        np.testing.assert_allclose(centers[0], stride / 2, atol=1e-3)
        np.testing.assert_allclose(centers[-1], np.array(image_size) - stride / 2, atol=1e-3)
        start += 9 * h * w


def test_anchor_order_matches_head_reshape():
    """Head channel a * K + k at (y, x) of a level is flat row (offset + (y * w + x) * A + a)."""
    image_size = (96, 160)
    anchors = d0_style_anchors(image_size)
    sizes = feature_sizes(image_size, 7)[3:8]
    num_classes = 2
    heads = []
    for _level, (h, w) in enumerate(sizes):
        values = np.zeros([1, h, w, 9 * num_classes], np.float32)
        heads.append(values)
    y, x, a = 1, 2, 4
    heads[0][0, y, x, a * num_classes + 1] = 1.0
    heads[1][0, 0, 0, 0] = 2.0
    flat = merge_levels([tf.constant(h) for h in heads], num_classes).numpy()
    assert flat.shape == (1, anchors.shape[0], num_classes)
    row = (y * 20 + x) * 9 + a
    assert np.argwhere(flat[0] == 1.0).tolist() == [[row, 1]]
    assert np.argwhere(flat[0] == 2.0).tolist() == [[12 * 20 * 9, 0]]
    # Anchor a = 4 is octave 1 (4 // 3) with aspect (1.4, 0.7) (4 % 3), centred at (12, 20).
    half = 4.0 * 8 * OCTAVE / 2
    np.testing.assert_allclose(
        anchors[row],
        [12 - half * 0.7, 20 - half * 1.4, 12 + half * 0.7, 20 + half * 1.4],
        atol=1e-4,
    )
    np.testing.assert_allclose(anchors[12 * 20 * 9], [-24, -24, 40, 40], atol=1e-4)


def test_box_coder_matches_automl_formula_and_round_trips():
    anchors = tf.constant([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 15.0, 15.0]])
    boxes = tf.constant([[2.0, 4.0, 12.0, 44.0], [5.0, 5.0, 15.0, 15.0]])
    deltas = encode_boxes(boxes, anchors).numpy()
    # ty = (yc - yc_a) / h_a, tx = (xc - xc_a) / w_a, th = log(h / h_a), tw = log(w / w_a)
    np.testing.assert_allclose(
        deltas[0], [2 / 10, 14 / 20, math.log(1.0), math.log(2.0)], atol=1e-6
    )
    np.testing.assert_allclose(deltas[1], [0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(decode_boxes(deltas, anchors).numpy(), boxes.numpy(), atol=1e-5)

    anchors = d0_style_anchors((128, 128))
    rng = np.random.default_rng(0)
    random_deltas = rng.normal(scale=0.5, size=(2, anchors.shape[0], 4)).astype(np.float32)
    decoded = decode_boxes(random_deltas, anchors)
    np.testing.assert_allclose(encode_boxes(decoded, anchors).numpy(), random_deltas, atol=1e-4)


def small_anchors():
    """Level 3 only on a 32 x 32 image, one 8 x 8 anchor per cell: 16 anchors."""
    return generate_anchors((32, 32), 3, 3, 1, ((1.0, 1.0),), 1.0)


def test_labeler_positive_background_and_padding():
    labeler = AnchorLabeler(small_anchors(), num_classes=3)
    gt_boxes = tf.constant([[8.0, 16.0, 16.0, 24.0], [0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 0.0, 0.0]])
    gt_labels = tf.constant([3, 0, -1])  # rows 1 and 2 are padding
    cls_targets, box_targets, num_positives = labeler.label(gt_boxes, gt_labels)
    expected = np.full(16, -1)
    expected[1 * 4 + 2] = 2
    np.testing.assert_array_equal(cls_targets.numpy(), expected)
    assert cls_targets.dtype == tf.int32
    assert num_positives.numpy() == 1.0
    np.testing.assert_allclose(box_targets.numpy(), 0.0, atol=1e-6)

    cls_targets, box_targets, num_positives = labeler.label(
        tf.zeros([0, 4]), tf.zeros([0], tf.int32)
    )
    np.testing.assert_array_equal(cls_targets.numpy(), np.full(16, -1))
    assert num_positives.numpy() == 0.0


def test_labeler_threshold_and_box_targets():
    labeler = AnchorLabeler(small_anchors(), num_classes=2)
    # IoU with anchor 0 ([0, 0, 8, 8]) is 48/64 = 0.75; with anchor 1 ([0, 8, 8, 16]) 0.
    gt = [[0.0, 2.0, 8.0, 8.0]]
    cls_targets, box_targets, num_positives = labeler.label(tf.constant(gt), tf.constant([1]))
    assert cls_targets.numpy()[0] == 0 and (cls_targets.numpy()[1:] == -1).all()
    np.testing.assert_allclose(
        box_targets.numpy()[0], [0.0, 1 / 8, 0.0, math.log(6 / 8)], atol=1e-6
    )
    assert num_positives.numpy() == 1.0


def test_labeler_force_match_and_ignore_zone():
    # A 4 x 4 box has IoU 0.25 with its best anchor: below 0.5, yet force-matched.
    labeler = AnchorLabeler(small_anchors(), num_classes=2)
    cls_targets, _, num_positives = labeler.label(
        tf.constant([[18.0, 18.0, 22.0, 22.0]]), tf.constant([2])
    )
    expected = np.full(16, -1)
    expected[2 * 4 + 2] = 1
    np.testing.assert_array_equal(cls_targets.numpy(), expected)
    assert num_positives.numpy() == 1.0

    # [0, 2, 8, 14] has IoU 48/112 = 0.43 with anchors 0 and 1: the first is forced positive,
    # the other falls between unmatched_threshold 0.3 and match_threshold 0.5: ignored (-2).
    labeler = AnchorLabeler(
        small_anchors(), num_classes=2, match_threshold=0.5, unmatched_threshold=0.3
    )
    cls_targets, _, num_positives = labeler.label(
        tf.constant([[0.0, 2.0, 8.0, 14.0]]), tf.constant([1])
    )
    assert cls_targets.numpy()[:3].tolist() == [0, -2, -1]
    assert num_positives.numpy() == 1.0


def test_labeler_every_box_gets_its_best_anchor():
    labeler = AnchorLabeler(small_anchors(), num_classes=3)
    # Box 0 matches anchor 5 ([8, 8, 16, 16]) with IoU 0.875; box 1's best anchor is 6
    # ([8, 16, 16, 24]) with IoU 35/85 = 0.41 < 0.5, matched by force.
    gt_boxes = tf.constant([[8.0, 8.0, 16.0, 15.0], [9.0, 13.0, 16.0, 21.0]])
    cls_targets, _, num_positives = labeler.label(gt_boxes, tf.constant([1, 3]))
    expected = np.full(16, -1)
    expected[[5, 6]] = [0, 2]
    np.testing.assert_array_equal(cls_targets.numpy(), expected)
    assert num_positives.numpy() == 2.0

    # Two identical boxes claim the same anchor: the first one keeps it.
    gt_boxes = tf.constant([[8.0, 8.0, 16.0, 16.0], [8.0, 8.0, 16.0, 16.0]])
    cls_targets, _, num_positives = labeler.label(gt_boxes, tf.constant([2, 3]))
    assert cls_targets.numpy()[5] == 1
    assert num_positives.numpy() == 1.0


def test_labeler_runs_inside_tf_data():
    labeler = AnchorLabeler(small_anchors(), num_classes=3)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant([[[0.0, 0.0, 8.0, 8.0]], [[0.0, 0.0, 0.0, 0.0]]]), tf.constant([[2], [0]]))
    )
    results = list(dataset.map(labeler.label).batch(2))
    cls_targets, box_targets, num_positives = results[0]
    assert cls_targets.shape == (2, 16) and box_targets.shape == (2, 16, 4)
    np.testing.assert_array_equal(num_positives.numpy(), [1.0, 0.0])
    assert cls_targets.numpy()[0, 0] == 1


def test_float_aspect_ratios_are_width_over_height():
    anchors = generate_anchors((64, 64), 3, 3, 1, (2.0,), 1.0).numpy()
    half_x, half_y = 4 * math.sqrt(2), 4 / math.sqrt(2)
    np.testing.assert_allclose(
        anchors[0], [4 - half_y, 4 - half_x, 4 + half_y, 4 + half_x], atol=1e-5
    )


def test_merged_levels_keep_the_anchor_count_under_an_unknown_batch_size():
    """Serving graphs take any batch size; postprocess needs the anchor count all the same.
    Levels of unknown size (raw outputs of another backend) merge too."""
    known = [tf.TensorSpec([None, 4, 4, 18]), tf.TensorSpec([None, 2, 2, 18])]
    unknown = [tf.TensorSpec([None, None, None, 18])] * 2
    for signature, anchors in ((known, 4 * 4 * 9 + 2 * 2 * 9), (unknown, None)):
        merged = tf.function(lambda *levels: merge_levels(levels, 2), input_signature=signature)
        assert merged.get_concrete_function().output_shapes.as_list() == [None, anchors, 2]
        values = merged(tf.ones([3, 4, 4, 18]), tf.zeros([3, 2, 2, 18]))
        assert values.shape == (3, 180, 2)
        assert float(tf.reduce_sum(values)) == 3 * 4 * 4 * 18
