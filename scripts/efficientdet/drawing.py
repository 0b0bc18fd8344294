"""Boxes with captions drawn with OpenCV, for inference results and for records under inspection."""

import cv2

# matplotlib's "tab20" colours (RGB): 20 well separated colours; a class keeps its colour in
# every image. A constant, so that drawing never imports matplotlib.
_PALETTE_RGB = (
    (31, 119, 180),
    (174, 199, 232),
    (255, 127, 14),
    (255, 187, 120),
    (44, 160, 44),
    (152, 223, 138),
    (214, 39, 40),
    (255, 152, 150),
    (148, 103, 189),
    (197, 176, 213),
    (140, 86, 75),
    (196, 156, 148),
    (227, 119, 194),
    (247, 182, 210),
    (127, 127, 127),
    (199, 199, 199),
    (188, 189, 34),
    (219, 219, 141),
    (23, 190, 207),
    (158, 218, 229),
)


def class_colour(label_id):
    """BGR colour of a label id."""
    red, green, blue = _PALETTE_RGB[int(label_id) % len(_PALETTE_RGB)]
    return blue, green, red


def _text_colour(background):
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    blue, green, red = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


def line_style(image):
    """(thickness, font scale) readable at the image's size."""
    height, width = image.shape[:2]
    return max(1, round(min(height, width) / 300)), max(0.4, min(height, width) / 1000)


def put_caption(canvas, caption, corner, colour, thickness, font_scale):
    """`caption` on a filled `colour` band whose bottom-left is `corner` (x, y), moved inside
    the image where it would stick out."""
    (text_w, text_h), baseline = cv2.getTextSize(
        caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
    )
    x, y = corner
    x = max(0, min(x, canvas.shape[1] - text_w))
    y = max(y, text_h + baseline)
    cv2.rectangle(canvas, (x, y - text_h - baseline), (x + text_w, y), colour, cv2.FILLED)
    cv2.putText(
        canvas,
        caption,
        (x, y - baseline),
        cv2.FONT_HERSHEY_SIMPLEX,
        font_scale,
        _text_colour(colour),
        thickness,
        cv2.LINE_AA,
    )


def draw_box(canvas, box, colour, caption, thickness, font_scale):
    """Outlines `box` (ymin, xmin, ymax, xmax pixels) on `canvas` with `caption` above it (or
    inside it, when the box touches the top edge)."""
    ymin, xmin, ymax, xmax = (int(round(value)) for value in box)
    cv2.rectangle(canvas, (xmin, ymin), (xmax, ymax), colour, thickness)
    put_caption(canvas, caption, (xmin, ymin), colour, thickness, font_scale)


def draw_detections(image_bgr, boxes, label_ids, scores, label_map):
    """A copy of `image_bgr` with each box (yxyx pixels) outlined and captioned "name 0.87"."""
    canvas = image_bgr.copy()
    thickness, font_scale = line_style(canvas)
    for box, label_id, score in zip(boxes, label_ids, scores):
        caption = f"{label_map.get(int(label_id), str(int(label_id)))} {score:.2f}"
        draw_box(canvas, box, class_colour(label_id), caption, thickness, font_scale)
    return canvas
