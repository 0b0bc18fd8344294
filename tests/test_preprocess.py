"""resize_and_pad: aspect ratio kept, image top-left, zero padding, scale back to the original."""

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.model.preprocess import resize_and_pad


@pytest.mark.parametrize(
    "original_size, output_size, resized_size",
    [
        ((100, 200), (64, 64), (32, 64)),
        ((300, 100), (64, 96), (64, 21)),
        ((50, 50), (128, 64), (64, 64)),
    ],
)
def test_resize_keeps_aspect_ratio_and_pads_with_zeros(original_size, output_size, resized_size):
    original = tf.fill([*original_size, 3], tf.constant(7, tf.uint8))
    image, scale = resize_and_pad(original, output_size)
    assert image.dtype == tf.float32 and image.shape == (*output_size, 3)
    image = image.numpy()
    rows, cols = resized_size
    np.testing.assert_allclose(image[:rows, :cols], 7.0, atol=1e-4)
    assert (image[rows:] == 0).all() and (image[:, cols:] == 0).all()
    np.testing.assert_allclose(
        scale.numpy(), max(o / r for o, r in zip(original_size, output_size)), rtol=1e-6
    )


def test_model_coordinates_map_back_to_original_pixels():
    # A bright square at rows 20..40, cols 100..140 of a 100 x 200 image lands at 1/scale of that.
    original = np.zeros([100, 200, 3], np.float32)
    original[20:40, 100:140] = 255.0
    image, scale = resize_and_pad(original, (50, 50))
    rows, cols = np.nonzero(image.numpy()[..., 0] > 127)
    box_in_model = np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    np.testing.assert_allclose(box_in_model * scale.numpy(), [20, 100, 40, 140], atol=scale.numpy())


def test_batch_variant_gives_one_scale_per_image():
    images = tf.fill([3, 60, 40, 3], 255.0)
    resized, scales = resize_and_pad(images, (30, 30))
    assert resized.shape == (3, 30, 30, 3)
    np.testing.assert_allclose(scales.numpy(), [2.0, 2.0, 2.0])
    single, scale = resize_and_pad(images[0], (30, 30))
    np.testing.assert_allclose(resized[1].numpy(), single.numpy())
    assert float(scale) == 2.0


def test_works_inside_tf_data_with_unknown_sizes():
    images = [np.full([h, w, 3], 9, np.uint8) for h, w in [(40, 80), (90, 30)]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
    ).map(lambda image: resize_and_pad(image, (32, 32)))
    outputs = list(dataset)
    assert [image.shape for image, _ in outputs] == [(32, 32, 3), (32, 32, 3)]
    np.testing.assert_allclose([float(scale) for _, scale in outputs], [2.5, 90 / 32])
