"""Decoding and NMS on small hand-made head outputs."""

import math

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.anchors import encode_boxes, generate_anchors
from efficientdet.model.postprocess import postprocess, top_candidates
from efficientdet.model.preprocess import resize_and_pad

IMAGE_SIZE = (32, 32)
ANCHORS = generate_anchors(IMAGE_SIZE, 3, 3, 1, ((1.0, 1.0),), 1.0)  # 4 x 4 cells, 8 x 8 anchors
NUM_CLASSES = 3

# (anchor, channel, score, box): A and B overlap with IoU 81/119, C sits on B in another class,
# D sticks out of the image.
BOX_A = [0.0, 0.0, 10.0, 10.0]
BOX_B = [1.0, 1.0, 11.0, 11.0]
BOX_D = [24.0, 24.0, 40.0, 36.0]
DETECTIONS = [(0, 0, 0.9, BOX_A), (1, 0, 0.8, BOX_B), (2, 1, 0.7, BOX_B), (15, 2, 0.6, BOX_D)]
IOU_AB = 81 / 119
CLIPPED_D = [24.0, 24.0, 32.0, 32.0]


def head_outputs(detections_per_image):
    """Head-shaped outputs (single level [B, 4, 4, K] and [B, 4, 4, 4]) with the given
    detections."""
    batch = len(detections_per_image)
    logits = np.full((batch, 16, NUM_CLASSES), -20.0, np.float32)
    deltas = np.zeros((batch, 16, 4), np.float32)
    for image, detections in enumerate(detections_per_image):
        for anchor, channel, score, box in detections:
            logits[image, anchor, channel] = math.log(score / (1 - score))
            deltas[image, anchor] = encode_boxes(
                np.array([box], np.float32), ANCHORS[anchor : anchor + 1]
            )[0]
    return (
        [tf.constant(logits.reshape(batch, 4, 4, NUM_CLASSES))],
        [tf.constant(deltas.reshape(batch, 4, 4, 4))],
    )


def run(detections_per_image, image_scales=None, **options):
    cls_outputs, box_outputs = head_outputs(detections_per_image)
    result = postprocess(
        cls_outputs, box_outputs, ANCHORS, IMAGE_SIZE, image_scales, score_threshold=0.05, **options
    )
    return {key: value.numpy() for key, value in result.items()}


def valid(result, image=0):
    count = result["num_detections"][image]
    return (
        result["boxes"][image, :count],
        result["scores"][image, :count],
        result["classes"][image, :count],
    )


def test_hard_nms_per_class_keeps_other_classes():
    result = run([DETECTIONS], method="hard", per_class=True)
    boxes, scores, classes = valid(result)
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6], rtol=1e-5)
    np.testing.assert_array_equal(classes, [1, 2, 3])
    np.testing.assert_allclose(boxes, [BOX_A, BOX_B, CLIPPED_D], atol=1e-4)
    assert result["classes"].dtype == np.int32


def test_hard_nms_class_agnostic_suppresses_across_classes():
    boxes, scores, classes = valid(run([DETECTIONS], method="hard", per_class=False))
    np.testing.assert_allclose(scores, [0.9, 0.6], rtol=1e-5)
    np.testing.assert_array_equal(classes, [1, 3])


def test_gaussian_soft_nms_per_class_decays_overlaps():
    boxes, scores, classes = valid(run([DETECTIONS], method="gaussian", per_class=True))
    decayed_b = 0.8 * math.exp(-(IOU_AB**2) / 0.5)
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6, decayed_b], rtol=1e-4)
    np.testing.assert_array_equal(classes, [1, 2, 3, 1])
    np.testing.assert_allclose(boxes[3], BOX_B, atol=1e-4)


def test_gaussian_soft_nms_class_agnostic():
    # C is decayed by A (IoU 0.68) and then by B (IoU 1) to 0.7 * 0.396 * e^-2 < 0.05: dropped.
    boxes, scores, classes = valid(run([DETECTIONS], method="gaussian", per_class=False))
    decay = math.exp(-(IOU_AB**2) / 0.5)
    np.testing.assert_allclose(scores, [0.9, 0.6, 0.8 * decay], rtol=1e-4)
    np.testing.assert_array_equal(classes, [1, 3, 1])


def test_batch_padding_scaling_and_max_detections():
    result = run([DETECTIONS, []], image_scales=tf.constant([2.0, 3.0]), max_detections=2)
    assert result["boxes"].shape == (2, 2, 4) and result["scores"].shape == (2, 2)
    np.testing.assert_array_equal(result["num_detections"], [2, 0])
    np.testing.assert_allclose(result["boxes"][0], 2 * np.array([BOX_A, BOX_B]), atol=1e-4)
    np.testing.assert_array_equal(result["classes"], [[1, 2], [0, 0]])
    np.testing.assert_array_equal(result["scores"][1], [0.0, 0.0])
    np.testing.assert_array_equal(result["boxes"][1], 0.0)


def test_boxes_in_original_image_pixels():
    original = tf.zeros([100, 200, 3], tf.uint8)  # 100 high, 200 wide
    image, scale = resize_and_pad(original, IMAGE_SIZE)
    assert image.shape == (32, 32, 3)
    np.testing.assert_allclose(scale.numpy(), 200 / 32)
    boxes, _, _ = valid(run([DETECTIONS], image_scales=scale[tf.newaxis], per_class=True))
    np.testing.assert_allclose(boxes[0], np.array(BOX_A) * 200 / 32, rtol=1e-5)


def test_boxes_reaching_into_the_padding_end_at_the_image_border():
    original = tf.zeros([100, 200, 3], tf.uint8)  # the model sees rows 16..31 as padding
    # Box D (rows 24..32, columns 24..32 of the model image) lies in the padding rows and
    # reaches past the right edge: it ends up flat on the bottom border, cut at the right one.
    _, scale = resize_and_pad(original, IMAGE_SIZE)
    cls_outputs, box_outputs = head_outputs([DETECTIONS])
    result = postprocess(
        cls_outputs,
        box_outputs,
        ANCHORS,
        IMAGE_SIZE,
        scale[tf.newaxis],
        tf.constant([[100, 200]]),
        score_threshold=0.05,
    )
    boxes = result["boxes"].numpy()[0, : result["num_detections"].numpy()[0]]
    box_d = boxes[np.argmax(boxes[:, 0])]
    np.testing.assert_allclose(box_d, [100, 24 * 200 / 32, 100, 200], rtol=1e-5)
    assert boxes[:, [0, 2]].max() <= 100 and boxes[:, [1, 3]].max() <= 200


@pytest.mark.parametrize("method", ["hard", "gaussian"])
def test_exported_function_with_unknown_batch(tmp_path, method):
    spec = (
        [tf.TensorSpec([None, 4, 4, NUM_CLASSES], tf.float32)],
        [tf.TensorSpec([None, 4, 4, 4], tf.float32)],
        tf.TensorSpec([None], tf.float32),
    )
    module = tf.Module()
    module.detect = tf.function(
        lambda cls_outputs, box_outputs, scales: postprocess(
            cls_outputs,
            box_outputs,
            ANCHORS,
            IMAGE_SIZE,
            scales,
            method=method,
            score_threshold=0.05,
        ),
        input_signature=spec,
    )
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    cls_outputs, box_outputs = head_outputs([DETECTIONS, DETECTIONS, []])
    result = loaded.detect(cls_outputs, box_outputs, tf.constant([1.0, 2.0, 1.0]))
    expected = run(
        [DETECTIONS, DETECTIONS, []], image_scales=tf.constant([1.0, 2.0, 1.0]), method=method
    )
    for key, value in result.items():
        np.testing.assert_allclose(value.numpy(), expected[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "level_sizes, k, spread",
    [
        ((300,), 40, 1.0),
        ((192, 48, 12, 48), 40, 1.0),
        ((192, 48, 12, 48), 300, 1.0),
        ((12, 8), 40, 1.0),
        ((192, 48, 12, 48), 40, 0.0),
    ],
)
def test_top_candidates_equal_a_plain_top_k_ties_included(level_sizes, k, spread):
    # Logits rounded to a few values, or all equal (an untrained head): many ties, which must
    # resolve in index order, across the levels' boundaries too.
    rng = np.random.default_rng(0)
    shape = (2, sum(level_sizes), 7)
    logits = tf.constant(np.round(spread * rng.normal(size=shape), 1), tf.float32)
    values, indices = top_candidates(tf.split(logits, level_sizes, axis=1), k)
    expected_values, expected_indices = tf.math.top_k(tf.reshape(logits, [2, -1]), k=k)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(indices, expected_indices)
