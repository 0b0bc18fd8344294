"""Decoding dataset images with OpenCV: their real size and colour, conversions, record images."""

import dataclasses
import struct

import cv2
import numpy as np

from efficientdet.data.image_formats import sniff_format
from efficientdet.errors import UserError

# Decode stored pixels as TensorFlow does: EXIF orientation is not applied.
DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_COLOR = {1: "grayscale", 3: "color", 4: "CMYK"}


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    color: str


def _jpeg_components(data):
    """Number of colour components in a JPEG's frame header, or None if none is found."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _JPEG_SOF_MARKERS:
            return data[position + 9] if position + 9 < len(data) else None
        position += 2 + length
    return None


def read_image_info(path):
    """Decodes the whole image (so truncated files are caught) and returns its real properties."""
    data = path.read_bytes()
    if not data:
        raise UserError(f"{path}: empty image file")
    image_format = sniff_format(data, path.suffix)
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise UserError(f"{path}: cannot decode the image (truncated, corrupt or not an image)")
    height, width = pixels.shape[:2]
    if image_format == "jpeg":
        color = _JPEG_COLOR.get(_jpeg_components(data), "unknown")
    else:
        color = "grayscale" if pixels.ndim == 2 or pixels.shape[2] == 1 else "color"
    return ImageInfo(image_format, int(width), int(height), color)


def png_bytes(path):
    """The image file converted to PNG (BGR, 8 bits, EXIF orientation not applied)."""
    pixels = cv2.imdecode(np.fromfile(path, np.uint8), DECODE_FLAGS)
    if pixels is None:
        raise UserError(f"{path}: cannot decode the image")
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise UserError(f"{path}: cannot convert the image to PNG")
    return encoded.tobytes()


def decode_record_image(data):
    """BGR pixels of a record's image bytes, or None when they do not decode."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), DECODE_FLAGS)
