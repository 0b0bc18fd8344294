"""Geometric training augmentation: horizontal flip and scale jitter with crop/pad (TF ops).

Boxes are float32 [N, 4] ymin, xmin, ymax, xmax in pixels of the image they come with
(continuous coordinates: a box covering the whole image is [0, 0, height, width]).
"""

import tensorflow as tf


def flip_horizontal(image, boxes):
    """Mirror an image [H, W, C] and its boxes left to right."""
    width = tf.cast(tf.shape(image)[1], boxes.dtype)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped_boxes = tf.stack([ymin, width - xmax, ymax, width - xmin], axis=-1)
    return tf.reverse(image, axis=[1]), flipped_boxes


def random_flip_horizontal(image, boxes, probability=0.5):
    """flip_horizontal with the given probability."""
    return tf.cond(
        tf.random.uniform([]) < probability,
        lambda: flip_horizontal(image, boxes),
        lambda: (image, boxes),
    )


def scale_crop_pad(image, boxes, classes, output_size, image_scale, offset):
    """Resize by `image_scale`, crop an `output_size` window at `offset`, zero-pad bottom/right.

    Args:
        image: [H, W, 3] any numeric dtype, values 0..255.
        boxes: float32 [N, 4] pixels of `image`.
        classes: [N] labels carried along with the boxes.
        output_size: (height, width) of the result.
        image_scale: scalar, resized size = floor(original size * image_scale).
        offset: int32 (y, x) top-left corner of the crop in the resized image.

    Returns:
        image float32 [height, width, 3] in 0..255; boxes in output pixels, clipped to the output
        and without those left with zero area; the matching classes.
    """
    output_height, output_width = output_size
    original_size = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled_size = tf.maximum(tf.cast(original_size * image_scale, tf.int32), 1)
    resized = tf.image.resize(tf.cast(image, tf.float32), scaled_size)
    cropped = resized[offset[0] : offset[0] + output_height, offset[1] : offset[1] + output_width]
    output = tf.image.pad_to_bounding_box(cropped, 0, 0, output_height, output_width)

    box_scale = tf.cast(scaled_size, tf.float32) / original_size
    box_offset = tf.cast(offset, tf.float32)
    boxes = boxes * tf.tile(box_scale, [2]) - tf.tile(box_offset, [2])
    boxes = clip_boxes(boxes, (output_height, output_width))
    keep = has_area(boxes)
    return output, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)


def random_scale_and_offset(image_size, output_size, jitter_min, jitter_max):
    """Draw the scale and crop offset of scale jitter.

    The image is fitted (aspect kept) into output_size * factor, factor ~ U(jitter_min,
    jitter_max); where the result is larger than output_size a random window is cropped.
    Returns (image_scale, offset (y, x) int32).
    """
    factor = tf.random.uniform([], jitter_min, jitter_max)
    output = tf.constant(output_size, tf.float32)
    original = tf.cast(image_size, tf.float32)
    target = tf.floor(factor * output)
    image_scale = tf.reduce_min(target / original)
    scaled = tf.floor(original * image_scale)
    slack = tf.maximum(scaled - output, 0.0)
    offset = tf.cast(slack * tf.random.uniform([2]), tf.int32)
    return image_scale, offset


def random_scale_crop_pad(image, boxes, classes, output_size, jitter_min, jitter_max):
    """Scale jitter: scale_crop_pad with a random scale and offset.

    Returns (image, boxes, classes, scale) where scale = 1 / image_scale maps output pixels
    back to the size of the input image (crop offset not included).
    """
    image_scale, offset = random_scale_and_offset(
        tf.shape(image)[:2], output_size, jitter_min, jitter_max
    )
    image, boxes, classes = scale_crop_pad(image, boxes, classes, output_size, image_scale, offset)
    return image, boxes, classes, 1.0 / image_scale


def clip_boxes(boxes, image_size):
    """Clip pixel boxes [N, 4] to an image of size (height, width)."""
    height = tf.cast(image_size[0], boxes.dtype)
    width = tf.cast(image_size[1], boxes.dtype)
    return tf.clip_by_value(boxes, 0.0, tf.stack([height, width, height, width]))


def has_area(boxes):
    """Bool [N]: the box has positive height and width."""
    return tf.logical_and(boxes[:, 2] > boxes[:, 0], boxes[:, 3] > boxes[:, 1])
