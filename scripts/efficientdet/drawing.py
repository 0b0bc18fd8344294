"""Draw detections on an image with OpenCV: a box, the class name and the score per object."""

import cv2
import numpy as np
from matplotlib import colormaps

# 20 well separated colours; a class keeps its colour in every image.
_PALETTE = np.array(colormaps["tab20"].colors) * 255


def class_colour(label_id):
    """BGR colour of a label id."""
    red, green, blue = _PALETTE[int(label_id) % len(_PALETTE)]
    return int(blue), int(green), int(red)


def _text_colour(background):
    """Black on light backgrounds, white on dark ones (ITU-R BT.601 luma)."""
    blue, green, red = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


def draw_detections(image_bgr, boxes, label_ids, scores, label_map):
    """A copy of `image_bgr` with each box (yxyx pixels) outlined and captioned "name 0.87"."""
    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    font_scale = max(0.4, min(height, width) / 1000)
    for (ymin, xmin, ymax, xmax), label_id, score in zip(boxes, label_ids, scores):
        colour = class_colour(label_id)
        top_left = (int(round(xmin)), int(round(ymin)))
        cv2.rectangle(canvas, top_left, (int(round(xmax)), int(round(ymax))), colour, thickness)
        caption = f"{label_map.get(int(label_id), str(int(label_id)))} {score:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(
            caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        # The caption sits above the box, or inside it when the box touches the top edge.
        text_top = top_left[1] - text_h - baseline
        corner = (top_left[0], text_top if text_top >= 0 else top_left[1])
        cv2.rectangle(
            canvas, corner, (corner[0] + text_w, corner[1] + text_h + baseline), colour, cv2.FILLED
        )
        cv2.putText(
            canvas, caption, (corner[0], corner[1] + text_h), cv2.FONT_HERSHEY_SIMPLEX,
            font_scale, _text_colour(colour), thickness, cv2.LINE_AA,
        )
    return canvas
