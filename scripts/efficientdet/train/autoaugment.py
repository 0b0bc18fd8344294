"""Box-aware AutoAugment policies v0-v3 and RandAugment for detection, in TensorFlow ops.

AutoAugment for detection: Zoph et al., "Learning Data Augmentation Strategies for Object
Detection", arXiv:1906.11172; policies and magnitudes as google/automl's EfficientDet uses them.

Images are uint8 [H, W, 3]; boxes float32 [N, 4] ymin, xmin, ymax, xmax in pixels. Geometric
ops move the boxes with the content and clip them to the image. A box pushed out of the image
keeps zero area instead of being dropped, so boxes stay aligned with their classes; the scale
jitter that follows in the input pipeline removes such boxes.
"""

import math

import tensorflow as tf

from efficientdet.errors import UserError
from efficientdet.train.augment import clip_boxes

MAX_LEVEL = 10.0
FILL_VALUE = 128

# Magnitudes at level MAX_LEVEL, in pixels of the original image (as the reference).
CUTOUT_PIXELS = 100
CUTOUT_INSIDE_BOX_PIXELS = 50
BOX_CUTOUT_MAX_FRACTION = 0.75
TRANSLATE_PIXELS = 250
TRANSLATE_INSIDE_BOX_PIXELS = 120
SHEAR_MAX = 0.3
ROTATE_MAX_DEGREES = 30.0

# Ops applied to the content of each box get a third of the stated probability, per box.
INSIDE_BOX_PROBABILITY_FACTOR = 1.0 / 3.0

# Each policy is a list of sub-policies; one sub-policy, picked at random per image, applies
# its (op, probability, level) steps in order.
POLICIES = {
    "v0": [
        [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
        [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
        [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
        [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
    ],
    "v1": [
        [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
        [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
        [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
        [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
        [("Color", 0.0, 0), ("ShearX_Only_BBoxes", 0.8, 4)],
        [("ShearY_Only_BBoxes", 0.8, 2), ("Flip_Only_BBoxes", 0.0, 10)],
        [("Equalize", 0.6, 10), ("TranslateX_BBox", 0.2, 2)],
        [("Color", 1.0, 10), ("TranslateY_Only_BBoxes", 0.4, 6)],
        [("Rotate_BBox", 0.8, 10), ("Contrast", 0.0, 10)],
        [("Cutout", 0.2, 2), ("Brightness", 0.8, 10)],
        [("Color", 1.0, 6), ("Equalize", 1.0, 2)],
        [("Cutout_Only_BBoxes", 0.4, 6), ("TranslateY_Only_BBoxes", 0.8, 2)],
        [("Color", 0.2, 8), ("Rotate_BBox", 0.8, 10)],
        [("Sharpness", 0.4, 4), ("TranslateY_Only_BBoxes", 0.0, 4)],
        [("Sharpness", 1.0, 4), ("SolarizeAdd", 0.4, 4)],
        [("Rotate_BBox", 1.0, 8), ("Sharpness", 0.2, 8)],
        [("ShearY_BBox", 0.6, 10), ("Equalize_Only_BBoxes", 0.6, 8)],
        [("ShearX_BBox", 0.2, 6), ("TranslateY_Only_BBoxes", 0.2, 10)],
        [("SolarizeAdd", 0.6, 8), ("Brightness", 0.8, 10)],
    ],
    "v2": [
        [("Color", 0.0, 6), ("Cutout", 0.6, 8), ("Sharpness", 0.4, 8)],
        [("Rotate_BBox", 0.4, 8), ("Sharpness", 0.4, 2), ("Rotate_BBox", 0.8, 10)],
        [("TranslateY_BBox", 1.0, 8), ("AutoContrast", 0.8, 2)],
        [("AutoContrast", 0.4, 6), ("ShearX_BBox", 0.8, 8), ("Brightness", 0.0, 10)],
        [("SolarizeAdd", 0.2, 6), ("Contrast", 0.0, 10), ("AutoContrast", 0.6, 0)],
        [("Cutout", 0.2, 0), ("Solarize", 0.8, 8), ("Color", 1.0, 4)],
        [("TranslateY_BBox", 0.0, 4), ("Equalize", 0.6, 8), ("Solarize", 0.0, 10)],
        [("TranslateY_BBox", 0.2, 2), ("ShearY_BBox", 0.8, 8), ("Rotate_BBox", 0.8, 8)],
        [("Cutout", 0.8, 8), ("Brightness", 0.8, 8), ("Cutout", 0.2, 2)],
        [("Color", 0.8, 4), ("TranslateY_BBox", 1.0, 6), ("Rotate_BBox", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("BBox_Cutout", 1.0, 4), ("Cutout", 0.2, 8)],
        [("Rotate_BBox", 0.0, 0), ("Equalize", 0.6, 6), ("ShearY_BBox", 0.6, 8)],
        [("Brightness", 0.8, 8), ("AutoContrast", 0.4, 2), ("Brightness", 0.2, 2)],
        [("TranslateY_BBox", 0.4, 8), ("Solarize", 0.4, 6), ("SolarizeAdd", 0.2, 10)],
        [("Contrast", 1.0, 10), ("SolarizeAdd", 0.2, 8), ("Equalize", 0.2, 4)],
    ],
    "v3": [
        [("Posterize", 0.8, 2), ("TranslateX_BBox", 1.0, 8)],
        [("BBox_Cutout", 0.2, 10), ("Sharpness", 1.0, 8)],
        [("Rotate_BBox", 0.6, 8), ("Rotate_BBox", 0.8, 10)],
        [("Equalize", 0.8, 10), ("AutoContrast", 0.2, 10)],
        [("SolarizeAdd", 0.2, 2), ("TranslateY_BBox", 0.2, 8)],
        [("Sharpness", 0.0, 2), ("Color", 0.4, 8)],
        [("Equalize", 1.0, 8), ("TranslateY_BBox", 1.0, 8)],
        [("Posterize", 0.6, 2), ("Rotate_BBox", 0.0, 10)],
        [("AutoContrast", 0.6, 0), ("Rotate_BBox", 1.0, 6)],
        [("Equalize", 0.0, 4), ("Cutout", 0.8, 10)],
        [("Brightness", 1.0, 2), ("TranslateY_BBox", 1.0, 6)],
        [("Contrast", 0.0, 2), ("ShearY_BBox", 0.8, 0)],
        [("AutoContrast", 0.8, 10), ("Contrast", 0.2, 10)],
        [("Rotate_BBox", 1.0, 10), ("Cutout", 1.0, 10)],
        [("SolarizeAdd", 0.8, 6), ("Equalize", 0.8, 8)],
    ],
}

RANDAUG_OPS = (
    "Equalize",
    "Solarize",
    "Color",
    "Cutout",
    "SolarizeAdd",
    "TranslateX_BBox",
    "TranslateY_BBox",
    "ShearX_BBox",
    "ShearY_BBox",
    "Rotate_BBox",
)

POLICY_NAMES = (*POLICIES, "randaug")


# ---- pixel ops ---------------------------------------------------------------------------


def blend(image1, image2, factor):
    """image1 + factor * (image2 - image1), clipped to uint8 (factor > 1 extrapolates)."""
    image1 = tf.cast(image1, tf.float32)
    image2 = tf.cast(image2, tf.float32)
    blended = image1 + factor * (image2 - image1)
    return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def color(image, factor):
    """PIL ImageEnhance.Color: blend with the grayscale image."""
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
    return blend(gray, image, factor)


def contrast(image, factor):
    """PIL ImageEnhance.Contrast: blend with the mean gray level."""
    mean = tf.reduce_mean(tf.cast(tf.image.rgb_to_grayscale(image), tf.float32))
    return blend(tf.fill(tf.shape(image), mean), image, factor)


def brightness(image, factor):
    """PIL ImageEnhance.Brightness: blend with black."""
    return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
    """PIL ImageEnhance.Sharpness: blend with a smoothed image whose border is left as is."""
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(
        tf.cast(image, tf.float32)[None], kernel, strides=[1, 1, 1, 1], padding="VALID"
    )[0]
    smooth = tf.cast(tf.clip_by_value(tf.round(smooth), 0.0, 255.0), tf.uint8)
    interior = tf.pad(tf.ones_like(smooth, tf.bool), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), image)
    return blend(degenerate, image, factor)


def posterize(image, bits):
    """Keep the `bits` most significant bits of each value."""
    shift = tf.constant(8 - bits, tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def solarize(image, threshold):
    """Invert the values at or above `threshold`."""
    return tf.where(tf.cast(image, tf.int32) < threshold, image, 255 - image)


def solarize_add(image, addition, threshold=128):
    """Add `addition` (clipped) to the values below `threshold`."""
    values = tf.cast(image, tf.int32)
    added = tf.cast(tf.clip_by_value(values + addition, 0, 255), tf.uint8)
    return tf.where(values < threshold, added, image)


def autocontrast(image):
    """PIL ImageOps.autocontrast: stretch each channel to 0..255."""
    values = tf.cast(image, tf.float32)
    low = tf.reduce_min(values, axis=[0, 1])
    high = tf.reduce_max(values, axis=[0, 1])
    scale = tf.where(high > low, 255.0 / tf.maximum(high - low, 1.0), 1.0)
    offset = tf.where(high > low, low, 0.0)
    return tf.cast(tf.clip_by_value(tf.round((values - offset) * scale), 0.0, 255.0), tf.uint8)


def equalize(image):
    """PIL ImageOps.equalize: per-channel histogram equalisation."""
    return tf.stack([_equalize_channel(image[:, :, c]) for c in range(3)], axis=-1)


def _equalize_channel(channel):
    values = tf.cast(channel, tf.int32)
    histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    last_count = tf.gather(histogram, tf.reduce_max(tf.where(histogram > 0)))
    step = (tf.reduce_sum(histogram) - last_count) // 255

    def equalized():
        lut = (tf.cumsum(histogram) + step // 2) // step
        lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], axis=0), 0, 255)
        return tf.cast(tf.gather(lut, values), tf.uint8)

    return tf.cond(step > 0, equalized, lambda: channel)


def cutout(image, half_size, center=None):
    """Fill a square of side 2 * half_size (clipped to the image) with gray.

    The center (y, x) is drawn uniformly over the image unless given.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if center is None:
        center = (
            tf.random.uniform([], 0, height, tf.int32),
            tf.random.uniform([], 0, width, tf.int32),
        )
    return _fill_rectangle(
        image,
        center[0] - half_size[0],
        center[1] - half_size[1],
        center[0] + half_size[0],
        center[1] + half_size[1],
    )


def _fill_rectangle(image, top, left, bottom, right):
    rows = tf.range(tf.shape(image)[0])[:, None]
    cols = tf.range(tf.shape(image)[1])[None, :]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return tf.where(inside[:, :, None], tf.constant(FILL_VALUE, image.dtype), image)


# ---- geometric ops -------------------------------------------------------------------------
# A geometric op is a 3x3 matrix mapping a content point (x, y, 1) of the input to where it
# lands in the output, in continuous pixel coordinates (pixel centres at i + 0.5).


def translation_matrix(dx, dy):
    return _affine([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def shear_matrix(level, horizontal):
    """x += level * y (horizontal) or y += level * x."""
    if horizontal:
        return _affine([[1.0, level, 0.0], [0.0, 1.0, 0.0]])
    return _affine([[1.0, 0.0, 0.0], [level, 1.0, 0.0]])


def rotation_matrix(degrees, image_size):
    """Rotation about the image centre; positive degrees turn the content clockwise on screen."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    center_y = tf.cast(image_size[0], tf.float32) / 2.0
    center_x = tf.cast(image_size[1], tf.float32) / 2.0
    rotate = _affine([[cos, -sin, 0.0], [sin, cos, 0.0]])
    to_center = translation_matrix(-center_x, -center_y)
    return translation_matrix(center_x, center_y) @ rotate @ to_center


def _affine(rows):
    rows = [[tf.cast(value, tf.float32) for value in row] for row in rows]
    return tf.stack([tf.stack(row) for row in rows] + [tf.constant([0.0, 0.0, 1.0])])


def transform_image(image, matrix):
    """Warp an image [H, W, C] by a content matrix; uncovered pixels are gray."""
    to_index = translation_matrix(-0.5, -0.5)
    from_index = translation_matrix(0.5, 0.5)
    output_to_input = to_index @ tf.linalg.inv(matrix) @ from_index
    transforms = tf.reshape(output_to_input, [9])[:8][None]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transforms,
        output_shape=tf.shape(image)[:2],
        fill_value=float(FILL_VALUE),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return warped[0]


def transform_boxes(boxes, matrix, image_size):
    """Move boxes [N, 4] by a content matrix: the box around the moved corners, clipped."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    corners_x = tf.stack([xmin, xmax, xmin, xmax], axis=-1)
    corners_y = tf.stack([ymin, ymin, ymax, ymax], axis=-1)
    moved_x = matrix[0, 0] * corners_x + matrix[0, 1] * corners_y + matrix[0, 2]
    moved_y = matrix[1, 0] * corners_x + matrix[1, 1] * corners_y + matrix[1, 2]
    moved = tf.stack(
        [
            tf.reduce_min(moved_y, axis=-1),
            tf.reduce_min(moved_x, axis=-1),
            tf.reduce_max(moved_y, axis=-1),
            tf.reduce_max(moved_x, axis=-1),
        ],
        axis=-1,
    )
    return clip_boxes(moved, image_size)


def transform_with_boxes(image, boxes, matrix):
    """Warp an image and its boxes together."""
    return transform_image(image, matrix), transform_boxes(boxes, matrix, tf.shape(image)[:2])


def box_cutout(image, boxes, fraction):
    """Cutout inside one random box, sized `fraction` of that box, centred anywhere in it."""

    def cut():
        box = tf.cast(
            _pixel_box(
                boxes[tf.random.uniform([], 0, tf.shape(boxes)[0], tf.int32)], tf.shape(image)[:2]
            ),
            tf.int32,
        )
        half_size = tf.cast(fraction * tf.cast(box[2:] - box[:2], tf.float32) / 2.0, tf.int32)
        center = (
            tf.random.uniform([], box[0], tf.maximum(box[2], box[0] + 1), tf.int32),
            tf.random.uniform([], box[1], tf.maximum(box[3], box[1] + 1), tf.int32),
        )
        return cutout(image, half_size, center)

    return tf.cond(tf.shape(boxes)[0] > 0, cut, lambda: image), boxes


def _pixel_box(box, image_size):
    """Integer pixel rows/cols [top, left, bottom, right) covered by a box, within the image."""
    size = tf.cast(tf.concat([image_size, image_size], axis=0), tf.float32)
    top_left = tf.floor(box[:2])
    bottom_right = tf.math.ceil(box[2:])
    return tf.clip_by_value(tf.concat([top_left, bottom_right], axis=0), 0.0, size)


def apply_inside_boxes(image, boxes, probability, op):
    """Apply an image op to the content of each box, independently with `probability`."""

    def body(index, image):
        top, left, bottom, right = tf.unstack(
            tf.cast(_pixel_box(boxes[index], tf.shape(image)[:2]), tf.int32)
        )
        apply = (tf.random.uniform([]) < probability) & (bottom > top) & (right > left)
        return index + 1, tf.cond(
            apply, lambda: _replace_region(image, top, left, bottom, right, op), lambda: image
        )

    _, image = tf.while_loop(
        lambda index, _: index < tf.shape(boxes)[0], body, [tf.constant(0), image]
    )
    return image, boxes


def _replace_region(image, top, left, bottom, right, op):
    region = op(image[top:bottom, left:right])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    padding = [[top, height - bottom], [left, width - right], [0, 0]]
    inside = tf.pad(tf.ones_like(region, tf.bool), padding)
    return tf.where(inside, tf.pad(region, padding), image)


# ---- level -> op -------------------------------------------------------------------------


def _random_sign(value):
    return tf.where(tf.random.uniform([]) < 0.5, -value, value)


def _fraction(level):
    return level / MAX_LEVEL


def _enhance_factor(level):
    return _fraction(level) * 1.8 + 0.1


def _posterize_bits(level):
    # The reference maps low levels to 0 bits, whose shift by 8 TF clamps to 7: one bit kept.
    return max(1, int(_fraction(level) * 4))


def _square(half):
    return (half, half)


def _translate(horizontal, pixels):
    pixels = _random_sign(pixels)
    return translation_matrix(pixels, 0.0) if horizontal else translation_matrix(0.0, pixels)


# name -> (image, level) -> image
IMAGE_OPS = {
    "AutoContrast": lambda image, level: autocontrast(image),
    "Equalize": lambda image, level: equalize(image),
    "Posterize": lambda image, level: posterize(image, _posterize_bits(level)),
    "Solarize": lambda image, level: solarize(image, int(_fraction(level) * 256)),
    "SolarizeAdd": lambda image, level: solarize_add(image, int(_fraction(level) * 110)),
    "Color": lambda image, level: color(image, _enhance_factor(level)),
    "Contrast": lambda image, level: contrast(image, _enhance_factor(level)),
    "Brightness": lambda image, level: brightness(image, _enhance_factor(level)),
    "Sharpness": lambda image, level: sharpness(image, _enhance_factor(level)),
    "Cutout": lambda image, level: cutout(image, _square(int(_fraction(level) * CUTOUT_PIXELS))),
}

# name -> (image, boxes, level) -> (image, boxes)
BOX_OPS = {
    "BBox_Cutout": lambda image, boxes, level: box_cutout(
        image, boxes, _fraction(level) * BOX_CUTOUT_MAX_FRACTION
    ),
    "TranslateX_BBox": lambda image, boxes, level: transform_with_boxes(
        image, boxes, _translate(True, _fraction(level) * TRANSLATE_PIXELS)
    ),
    "TranslateY_BBox": lambda image, boxes, level: transform_with_boxes(
        image, boxes, _translate(False, _fraction(level) * TRANSLATE_PIXELS)
    ),
    "ShearX_BBox": lambda image, boxes, level: transform_with_boxes(
        image, boxes, shear_matrix(_random_sign(_fraction(level) * SHEAR_MAX), True)
    ),
    "ShearY_BBox": lambda image, boxes, level: transform_with_boxes(
        image, boxes, shear_matrix(_random_sign(_fraction(level) * SHEAR_MAX), False)
    ),
    "Rotate_BBox": lambda image, boxes, level: transform_with_boxes(
        image,
        boxes,
        rotation_matrix(_random_sign(_fraction(level) * ROTATE_MAX_DEGREES), tf.shape(image)[:2]),
    ),
}

# name -> (region, level) -> region; applied to the content of each box, boxes unchanged
INSIDE_BOX_OPS = {
    "TranslateY_Only_BBoxes": lambda region, level: transform_image(
        region, _translate(False, _fraction(level) * TRANSLATE_INSIDE_BOX_PIXELS)
    ),
    "ShearX_Only_BBoxes": lambda region, level: transform_image(
        region, shear_matrix(_random_sign(_fraction(level) * SHEAR_MAX), True)
    ),
    "ShearY_Only_BBoxes": lambda region, level: transform_image(
        region, shear_matrix(_random_sign(_fraction(level) * SHEAR_MAX), False)
    ),
    "Flip_Only_BBoxes": lambda region, level: tf.reverse(region, axis=[1]),
    "Equalize_Only_BBoxes": lambda region, level: equalize(region),
    "Cutout_Only_BBoxes": lambda region, level: cutout(
        region, _square(int(_fraction(level) * CUTOUT_INSIDE_BOX_PIXELS))
    ),
}


def apply_op(name, image, boxes, level):
    """Apply the named op at `level` unconditionally (inside-box ops: to every box)."""
    if name in IMAGE_OPS:
        return IMAGE_OPS[name](image, level), boxes
    if name in BOX_OPS:
        return BOX_OPS[name](image, boxes, level)
    return apply_inside_boxes(image, boxes, 1.0, lambda region: INSIDE_BOX_OPS[name](region, level))


def _apply_step(name, probability, level, image, boxes):
    if name in INSIDE_BOX_OPS:
        return apply_inside_boxes(
            image,
            boxes,
            probability * INSIDE_BOX_PROBABILITY_FACTOR,
            lambda region: INSIDE_BOX_OPS[name](region, level),
        )
    return tf.cond(
        tf.random.uniform([]) < probability,
        lambda: apply_op(name, image, boxes, level),
        lambda: (image, boxes),
    )


def _sub_policy_fn(steps, image, boxes):
    def run():
        result = (image, boxes)
        for name, probability, level in steps:
            if probability > 0.0:
                result = _apply_step(name, probability, level, *result)
        return result

    return run


def autoaugment(image, boxes, policy):
    """Apply one random sub-policy of policy `policy` ("v0".."v3") to an image and its boxes."""
    sub_policies = POLICIES[policy]
    choice = tf.random.uniform([], 0, len(sub_policies), tf.int32)
    return tf.switch_case(choice, [_sub_policy_fn(steps, image, boxes) for steps in sub_policies])


def randaugment(image, boxes, num_layers=1, magnitude=15.0):
    """RandAugment: `num_layers` times, one random op of RANDAUG_OPS at `magnitude`."""
    for _ in range(num_layers):
        choice = tf.random.uniform([], 0, len(RANDAUG_OPS), tf.int32)
        image, boxes = tf.switch_case(
            choice,
            [
                (
                    lambda name=name, image=image, boxes=boxes: apply_op(
                        name, image, boxes, magnitude
                    )
                )
                for name in RANDAUG_OPS
            ],
        )
    return image, boxes


def distort(image, boxes, policy):
    """Augment a uint8 image [H, W, 3] and pixel boxes [N, 4] with a named policy.

    `policy` is one of "v0", "v1", "v2", "v3" (AutoAugment) or "randaug" (1 layer, magnitude 15,
    as the reference detector). Returns (image uint8 same size, boxes [N, 4] inside the image).
    """
    if policy not in POLICY_NAMES:
        raise UserError(
            f"autoaugment_policy: unknown policy {policy!r}; "
            f"expected one of {', '.join(POLICY_NAMES)}"
        )
    boxes = tf.cast(boxes, tf.float32)
    if policy == "randaug":
        image, boxes = randaugment(image, boxes)
    else:
        image, boxes = autoaugment(image, boxes, policy)
    return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(boxes, [None, 4])
