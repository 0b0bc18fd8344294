"""Flip, scale jitter and the AutoAugment / RandAugment policies keep boxes on their objects."""

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.train import augment, autoaugment


def white_box_image(height, width, box):
    """Black uint8 image with the pixels of an integer box [ymin, xmin, ymax, xmax) white."""
    image = np.zeros((height, width, 3), np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = 255
    return image


def white_extent(image, threshold=200):
    """[ymin, xmin, ymax, xmax] (continuous pixels) of the pixels brighter than threshold."""
    rows, cols = np.nonzero(np.asarray(image)[..., 0] > threshold)
    if rows.size == 0:
        return None
    return np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1], np.float32)


def assert_valid_boxes(boxes, height, width):
    boxes = np.asarray(boxes)
    assert boxes.ndim == 2 and boxes.shape[1] == 4
    assert np.all(np.isfinite(boxes))
    assert np.all(boxes >= 0.0)
    assert np.all(boxes[:, [0, 2]] <= height) and np.all(boxes[:, [1, 3]] <= width)
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])


# ---- flip --------------------------------------------------------------------------------


def test_flip_moves_box_with_its_pixels():
    image = white_box_image(40, 100, (5, 10, 25, 30))
    boxes = tf.constant([[5.0, 10.0, 25.0, 30.0]])
    flipped, boxes = augment.flip_horizontal(tf.constant(image), boxes)
    np.testing.assert_allclose(boxes.numpy(), [[5.0, 70.0, 25.0, 90.0]])
    np.testing.assert_allclose(white_extent(flipped), [5, 70, 25, 90])
    twice, boxes_twice = augment.flip_horizontal(flipped, boxes)
    np.testing.assert_array_equal(twice.numpy(), image)
    np.testing.assert_allclose(boxes_twice.numpy(), [[5.0, 10.0, 25.0, 30.0]])


def test_random_flip_flips_about_half_the_time():
    boxes = tf.constant([[0.0, 0.0, 10.0, 10.0]])
    image = tf.zeros([10, 40, 3])
    flipped = sum(
        float(augment.random_flip_horizontal(image, boxes)[1][0, 1]) == 30.0 for _ in range(200)
    )
    assert 60 < flipped < 140


# ---- scale, crop, pad ------------------------------------------------------------------------


def test_scale_crop_pad_by_hand():
    # 100 x 200 image scaled by 0.5 -> 50 x 100, window 64 x 64 at x offset 30.
    image = white_box_image(100, 200, (10, 100, 50, 160))
    boxes = tf.constant(
        [
            [10.0, 100.0, 50.0, 160.0],  # -> [5, 20, 25, 50]
            [10.0, 20.0, 50.0, 120.0],  # -> [5, -20, 25, 30] -> clipped to x 0
            [10.0, 150.0, 20.0, 190.0],  # -> [5, 45, 10, 65] -> clipped to x 64
            [10.0, 190.0, 20.0, 200.0],  # -> x 65..70: outside the window, dropped
            [60.0, 0.0, 60.0, 40.0],  # zero height: dropped
        ]
    )
    classes = tf.constant([1, 2, 3, 4, 5])
    out, out_boxes, out_classes = augment.scale_crop_pad(
        tf.constant(image), boxes, classes, (64, 64), 0.5, tf.constant([0, 30])
    )
    assert out.shape == (64, 64, 3) and out.dtype == tf.float32
    np.testing.assert_allclose(
        out_boxes.numpy(), [[5, 20, 25, 50], [5, 0, 25, 30], [5, 45, 10, 64]]
    )
    np.testing.assert_array_equal(out_classes.numpy(), [1, 2, 3])
    np.testing.assert_allclose(white_extent(out), [5, 20, 25, 50], atol=1)
    # Rows below the 50 scaled rows are zero padding.
    assert float(tf.reduce_max(out[50:])) == 0.0


def test_jitter_without_scale_range_fits_the_image():
    image = tf.zeros([300, 400, 3], tf.uint8)
    boxes = tf.constant([[30.0, 40.0, 270.0, 360.0]])
    out, out_boxes, _, scale = augment.random_scale_crop_pad(
        image, boxes, tf.constant([1]), (128, 128), 1.0, 1.0
    )
    assert out.shape == (128, 128, 3)
    np.testing.assert_allclose(float(scale), 400 / 128, rtol=1e-5)
    np.testing.assert_allclose(out_boxes.numpy() * float(scale), boxes.numpy(), atol=0.5)


@pytest.mark.parametrize("seed", range(3))
def test_random_jitter_keeps_boxes_on_their_pixels(seed):
    tf.random.set_seed(seed)
    box = (40, 60, 120, 200)
    image = tf.constant(white_box_image(160, 240, box))
    for _ in range(15):
        out, boxes, classes, scale = augment.random_scale_crop_pad(
            image, tf.constant([box], tf.float32), tf.constant([7]), (96, 128), 0.1, 2.0
        )
        assert out.shape == (96, 128, 3)
        assert_valid_boxes(boxes, 96, 128)
        extent = white_extent(out)
        if boxes.shape[0] == 1:
            assert int(classes[0]) == 7
            np.testing.assert_allclose(white_extent(out), boxes[0].numpy(), atol=1.5)
        else:
            # Dropped only when the object left the window or shrank below a pixel.
            assert extent is None or min(extent[2] - extent[0], extent[3] - extent[1]) <= 2
        assert 240 / 128 / 2.0 <= float(scale) <= 240 / 128 / 0.1 + 1e-3


# ---- autoaugment: geometry ---------------------------------------------------------------


def test_translation_by_hand():
    image = white_box_image(60, 100, (10, 20, 40, 60))
    matrix = autoaugment.translation_matrix(30.0, -5.0)
    boxes = tf.constant([[10.0, 20.0, 40.0, 60.0], [10.0, 80.0, 30.0, 95.0]])
    moved, boxes = autoaugment.transform_with_boxes(tf.constant(image), boxes, matrix)
    np.testing.assert_allclose(boxes.numpy(), [[5, 50, 35, 90], [5, 100, 25, 100]])
    np.testing.assert_allclose(white_extent(moved), [5, 50, 35, 90])
    # Uncovered pixels get the gray fill.
    assert np.all(moved.numpy()[:, :30] == autoaugment.FILL_VALUE)


@pytest.mark.parametrize(
    "matrix_fn",
    [
        lambda size: autoaugment.shear_matrix(0.3, True),
        lambda size: autoaugment.shear_matrix(-0.2, False),
        lambda size: autoaugment.rotation_matrix(30.0, size),
        lambda size: autoaugment.rotation_matrix(-90.0, size),
    ],
)
def test_warps_move_boxes_with_their_pixels(matrix_fn):
    box = (30, 50, 70, 110)
    image = white_box_image(120, 160, box)
    warped, boxes = autoaugment.transform_with_boxes(
        tf.constant(image), tf.constant([box], tf.float32), matrix_fn((120, 160))
    )
    assert_valid_boxes(boxes, 120, 160)
    np.testing.assert_allclose(white_extent(warped), boxes[0].numpy(), atol=1.5)


def test_rotation_by_quarter_turn_by_hand():
    matrix = autoaugment.rotation_matrix(90.0, (100, 100))
    boxes = autoaugment.transform_boxes(tf.constant([[10.0, 20.0, 30.0, 60.0]]), matrix, (100, 100))
    # Clockwise on screen: x' = 100 - y, y' = x.
    np.testing.assert_allclose(boxes.numpy(), [[20, 70, 60, 90]], atol=1e-4)


# ---- autoaugment: pixel ops --------------------------------------------------------------


def test_pixel_ops_by_hand():
    image = tf.constant([[[0, 100, 200], [50, 128, 255]]], tf.uint8)
    np.testing.assert_array_equal(autoaugment.solarize(image, 128), [[[0, 100, 55], [50, 127, 0]]])
    np.testing.assert_array_equal(
        autoaugment.solarize_add(image, 100), [[[100, 200, 200], [150, 128, 255]]]
    )
    np.testing.assert_array_equal(autoaugment.posterize(image, 2), [[[0, 64, 192], [0, 128, 192]]])
    np.testing.assert_array_equal(autoaugment.brightness(image, 0.0), np.zeros((1, 2, 3)))
    np.testing.assert_array_equal(autoaugment.autocontrast(image), [[[0, 0, 0], [255, 255, 255]]])
    constant = tf.fill([8, 8, 3], tf.constant(77, tf.uint8))
    np.testing.assert_array_equal(autoaugment.equalize(constant), constant)
    np.testing.assert_array_equal(autoaugment.sharpness(constant, 2.0), constant)
    np.testing.assert_array_equal(autoaugment.contrast(constant, 0.3), constant)


def test_cutout_fills_a_gray_square():
    image = tf.zeros([50, 50, 3], tf.uint8)
    out = autoaugment.cutout(image, (5, 5), center=(20, 30)).numpy()
    gray = out[..., 0] == autoaugment.FILL_VALUE
    assert gray.sum() == 100
    np.testing.assert_array_equal(white_extent(gray[..., None] * 255), [15, 25, 25, 35])


def test_inside_box_ops_touch_only_box_content():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))
    boxes = tf.constant([[10.0, 10.0, 40.5, 50.0], [50.0, 70.0, 80.0, 120.0]])
    outside = np.ones((80, 120), bool)
    outside[10:41, 10:50] = False
    outside[50:80, 70:120] = False
    for name in autoaugment.INSIDE_BOX_OPS:
        out, out_boxes = autoaugment.apply_op(name, image, boxes, 10)
        np.testing.assert_array_equal(out.numpy()[outside], image.numpy()[outside], err_msg=name)
        assert not np.array_equal(out.numpy(), image.numpy()), name
        np.testing.assert_array_equal(out_boxes, boxes)


# ---- autoaugment: every op and policy ----------------------------------------------------


def test_every_op_keeps_boxes_valid_in_graph_mode():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    boxes = np.array(
        [[5, 5, 60, 70], [40, 100, 90, 130], [0, 0, 1, 1], [30, 30, 30, 50]], np.float32
    )
    policy_ops = {
        name for policy in autoaugment.POLICIES.values() for steps in policy for name, _, _ in steps
    }
    names = sorted(policy_ops | set(autoaugment.RANDAUG_OPS))

    @tf.function
    def run(name, level):
        return autoaugment.apply_op(name, tf.constant(image), tf.constant(boxes), level)

    for name in names:
        for level in (0, 10):
            out, out_boxes = run(name, level)
            assert out.shape == image.shape and out.dtype == tf.uint8, name
            assert_valid_boxes(out_boxes, 90, 130)
            assert out_boxes.shape[0] == 4


@pytest.mark.parametrize("policy", autoaugment.POLICY_NAMES)
def test_policy_runs_in_tf_data_and_keeps_boxes_valid(policy):
    tf.random.set_seed(3)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (4, 72, 96, 3), dtype=np.uint8)
    boxes = np.array([[4, 6, 50, 60], [30, 40, 72, 96], [10, 80, 20, 95]], np.float32)
    boxes = np.tile(boxes[None], [4, 1, 1])
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, boxes))
        .repeat(12)
        .map(lambda image, box: autoaugment.distort(image, box, policy), num_parallel_calls=2)
    )
    changed = 0
    for index, (image, out_boxes) in enumerate(dataset):
        assert image.shape == (72, 96, 3) and image.dtype == tf.uint8
        assert_valid_boxes(out_boxes, 72, 96)
        assert out_boxes.shape[0] == 3
        changed += not np.array_equal(image.numpy(), images[index % 4])
    assert changed > 0


def test_unknown_policy_is_a_user_error():
    from efficientdet.errors import UserError

    with pytest.raises(UserError, match="autoaugment_policy"):
        autoaugment.distort(tf.zeros([4, 4, 3], tf.uint8), tf.zeros([0, 4]), "v9")
