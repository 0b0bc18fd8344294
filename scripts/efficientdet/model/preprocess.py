"""Resizing images to the model's input size, as automl: keep the aspect ratio, pad bottom-right.

The padding is zero pixels (the model normalises inside), where automl pads after
normalising, i.e. with the mean colour.
"""

import tensorflow as tf


def resize_and_pad(image, output_size):
    """Image [H, W, C] or batch [B, H, W, C] -> (float32 in [0, 255] at `output_size`, scale).

    The image is scaled by the largest factor that fits `output_size` (height, width), placed
    top-left and zero-padded. `scale` (float32; [B] for a batch) maps model pixel coordinates
    back to the original image: original = model * scale.
    """
    image = tf.convert_to_tensor(image)
    out_h, out_w = (int(side) for side in output_size)
    shape = tf.shape(image)
    height = tf.cast(shape[-3], tf.float32)
    width = tf.cast(shape[-2], tf.float32)
    resize_factor = tf.minimum(out_h / height, out_w / width)
    resized_h = tf.minimum(tf.cast(tf.round(height * resize_factor), tf.int32), out_h)
    resized_w = tf.minimum(tf.cast(tf.round(width * resize_factor), tf.int32), out_w)
    resized = tf.image.resize(tf.cast(image, tf.float32), [resized_h, resized_w])
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, out_h, out_w)
    scale = 1.0 / resize_factor
    if image.shape.rank == 4:
        scale = tf.fill([shape[0]], scale)
    return padded, scale
