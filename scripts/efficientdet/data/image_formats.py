"""Which files are images and which formats records carry as they are (no OpenCV needed here).

JPEG and PNG bytes go into records untouched; other formats OpenCV reads (BMP, TIFF, WebP, ...)
are converted to PNG, losslessly, because not every TFRecord reader decodes them.
"""

IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".pbm",
        ".pgm",
        ".ppm",
        ".pnm",
        ".sr",
        ".ras",
        ".jp2",
    }
)
RECORD_FORMATS = ("jpeg", "png")


def sniff_format(data, suffix):
    """'jpeg' or 'png' from the file's magic bytes, else the suffix without its dot."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return suffix.lower().lstrip(".")
