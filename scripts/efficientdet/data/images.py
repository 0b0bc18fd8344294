"""Dataset images: their real size and colour (from JPEG headers, else decoded with OpenCV),
conversions, record images."""

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
_PLAIN_JPEG_MARKERS = frozenset({0xC0, 0xC1, 0xC2})  # Huffman-coded baseline/extended/progressive
_JPEG_START_OF_SCAN = 0xDA
_JPEG_END_OF_IMAGE = b"\xff\xd9"
_UNDECODABLE = "cannot decode the image (truncated, corrupt or not an image)"


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # of the stored pixels
    height: int
    color: str  # "color", "grayscale", "CMYK" or "unknown"
    orientation: int = 1  # EXIF orientation (JPEG); 1: stored upright


def _exif_orientation(segment):
    """Orientation tag of an APP1 Exif segment's first IFD, 1 when absent."""
    if not segment.startswith(b"Exif\0\0") or len(segment) < 14:
        return 1
    tiff = segment[6:]
    order = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(tiff) - 11), 12):
        tag, _, _, value = struct.unpack(order + "HHIH", tiff[entry : entry + 10])
        if tag == 0x0112:
            return value
    return 1


def _jpeg_header(data):
    """(frame header, EXIF orientation, offset of the first start-of-scan marker) of a JPEG.

    The frame header is (precision, height, width, colour components, SOF marker); it and the
    offset are None when the segments before the scan do not hold them.
    """
    orientation = 1
    frame = None
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker == 0xE1:
            orientation = _exif_orientation(data[position + 4 : position + 2 + length])
        elif marker in _JPEG_SOF_MARKERS and position + 10 <= len(data):
            precision, height, width, components = struct.unpack(
                ">BHHB", data[position + 4 : position + 10]
            )
            frame = (precision, height, width, components, marker)
        elif marker == _JPEG_START_OF_SCAN:
            return frame, orientation, position
        position += 2 + length
    return frame, orientation, None


def _complete_jpeg_info(path, data):
    """ImageInfo of a baseline or progressive 8-bit JPEG from its headers, or None to decode it.

    Entropy-coded data never holds the end-of-image marker (0xFF is stuffed or a restart
    marker), so a file whose scan is followed by one is complete: that catches truncation as a
    full decode did, without decoding (libjpeg, too, only warns about damaged scan data).
    """
    frame, orientation, scan = _jpeg_header(data)
    if frame is None or scan is None:
        return None
    precision, height, width, components, marker = frame
    if precision != 8 or marker not in _PLAIN_JPEG_MARKERS or not (height and width):
        return None  # 12-bit, lossless, arithmetic-coded or DNL-sized: let the decoder judge
    if data.rfind(_JPEG_END_OF_IMAGE) < scan:
        raise UserError(f"{path}: {_UNDECODABLE}")
    return ImageInfo("jpeg", width, height, _JPEG_COLOR.get(components, "unknown"), orientation)


def read_image_info(path):
    """The image's real properties; UserError when it is truncated, corrupt or not an image.

    JPEGs are checked from their headers and end-of-image marker; other formats, and JPEGs of
    rarer kinds, are decoded in full.
    """
    data = path.read_bytes()
    if not data:
        raise UserError(f"{path}: empty image file")
    image_format = sniff_format(data, path.suffix)
    if image_format == "jpeg":
        info = _complete_jpeg_info(path, data)
        if info is not None:
            return info
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise UserError(f"{path}: {_UNDECODABLE}")
    height, width = pixels.shape[:2]
    if image_format == "jpeg":
        frame, orientation, _ = _jpeg_header(data)
        components = frame[3] if frame else None
        return ImageInfo(
            image_format,
            int(width),
            int(height),
            _JPEG_COLOR.get(components, "unknown"),
            orientation,
        )
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
