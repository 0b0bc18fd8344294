"""The images an inference runs on: one file, every image of a folder, or a glob; decoded safely."""

import glob
import logging
from pathlib import Path

import cv2
import numpy as np

from efficientdet.data.annotations import read_image_list
from efficientdet.data.image_formats import IMAGE_SUFFIXES
from efficientdet.data.images import DECODE_FLAGS
from efficientdet.errors import UserError

log = logging.getLogger(__name__)


def find_images(source, root=None):
    """Image paths of `source`: an image file, a folder (not recursive), a glob pattern, or a
    .txt list of paths (one per line, relative to `root`, default the list's folder, such as
    results/{dataset}/splits/val.txt under results/{dataset}/voc)."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".txt":
        return listed_images(path, Path(root) if root else path.parent)
    if path.is_file():
        return [path]
    if path.is_dir():
        images = sorted(item for item in path.iterdir() if _is_image(item))
        if not images:
            raise UserError(
                f"{source}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return images
    if glob.has_magic(str(source)):
        images = sorted(Path(item) for item in glob.glob(str(source), recursive=True))
        images = [item for item in images if _is_image(item)]
        if not images:
            raise UserError(f"{source}: pattern matches no images")
        return images
    raise UserError(f"{source}: no such image, folder or pattern")


def listed_images(list_path, root):
    images = [root / line.strip() for line in read_image_list(list_path)]
    if not images:
        raise UserError(f"{list_path}: lists no images")
    return images


def _is_image(path):
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path):
    """RGB uint8 [H, W, 3], or None (with a warning) when the file cannot be decoded."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        log.warning("%s: skipped, cannot be read: %s", path, error)
        return None
    # EXIF orientation is ignored, as TensorFlow's decoders (and so training) ignore it.
    image = cv2.imdecode(data, DECODE_FLAGS) if data.size else None
    if image is None:
        log.warning("%s: skipped, not a decodable image", path)
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
