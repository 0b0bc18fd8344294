"""The bundled sample dataset, generated deterministically:
`python -m efficientdet.data.sample OUT.zip`.

Solid circles, squares and triangles of distinct colours on a mildly textured background, in a
LabelImg flat layout inside one top folder (img.jpg beside img.xml). It is meant to be easy: a
small EfficientDet learns it in minutes on a CPU. A few images are PNG, some are not square, and
a few have no annotation at all (negative examples). The <path> in each XML is deliberately
wrong, as LabelImg files copied from another machine are.
"""

import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
from lxml import etree

from efficientdet.atomic import atomic_output

SEED = 20240601
NUM_IMAGES = 150
NEGATIVE_EVERY = 19  # image indices divisible by this have no objects and no XML
PNG_EVERY = 16
SIZES = ((256, 256), (256, 256), (256, 256), (320, 240), (240, 320))  # (width, height)
OBJECTS_PER_IMAGE = (1, 3)
OBJECT_SIZE = (40, 120)
CLASS_COLORS = {"circle": (40, 40, 220), "square": (40, 190, 40), "triangle": (210, 90, 20)}  # BGR
TOP_FOLDER = "sample-voc"
_ZIP_DATE = (2024, 6, 1, 0, 0, 0)


def _background(rng, width, height):
    base = rng.uniform(120, 200) + rng.uniform(-15, 15, size=3)
    coarse = rng.normal(0, 12, size=(height // 32 + 2, width // 32 + 2, 3))
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 2, size=(height, width, 3))
    return np.clip(base + texture + grain, 0, 255).astype(np.uint8)


def _draw(image, name, box, color):
    xmin, ymin, xmax, ymax = box
    if name == "circle":
        radius = (xmax - xmin) // 2
        cv2.circle(image, (xmin + radius, ymin + radius), radius, color, cv2.FILLED, cv2.LINE_AA)
    elif name == "square":
        cv2.rectangle(image, (xmin, ymin), (xmax, ymax), color, cv2.FILLED)
    else:
        points = np.array([[xmin, ymax], [xmax, ymax], [(xmin + xmax) // 2, ymin]], np.int32)
        cv2.fillPoly(image, [points], color, cv2.LINE_AA)


def _overlaps(box, boxes, margin=6):
    return any(
        box[0] < other[2] + margin
        and other[0] < box[2] + margin
        and box[1] < other[3] + margin
        and other[1] < box[3] + margin
        for other in boxes
    )


def _objects(rng, width, height):
    objects = []
    for _ in range(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1)):
        name = str(rng.choice(list(CLASS_COLORS)))
        for _attempt in range(50):
            size = int(rng.integers(OBJECT_SIZE[0], OBJECT_SIZE[1] + 1))
            size -= size % 2
            box_width = size
            if name == "triangle":
                box_width = int(np.clip(size * rng.uniform(0.75, 1.33), *OBJECT_SIZE))
            xmin = int(rng.integers(2, width - box_width - 2))
            ymin = int(rng.integers(2, height - size - 2))
            box = (xmin, ymin, xmin + box_width, ymin + size)
            if not _overlaps(box, [b for _, b in objects]):
                objects.append((name, box))
                break
    return objects


def _annotation_xml(filename, width, height, objects):
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = "images"
    etree.SubElement(root, "filename").text = filename
    etree.SubElement(root, "path").text = f"C:\\Users\\labeler\\Pictures\\shapes\\{filename}"
    etree.SubElement(etree.SubElement(root, "source"), "database").text = "Unknown"
    size = etree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        etree.SubElement(size, tag).text = str(value)
    etree.SubElement(root, "segmented").text = "0"
    for name, box in objects:
        element = etree.SubElement(root, "object")
        for tag, value in (
            ("name", name),
            ("pose", "Unspecified"),
            ("truncated", "0"),
            ("difficult", "0"),
        ):
            etree.SubElement(element, tag).text = value
        bndbox = etree.SubElement(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            etree.SubElement(bndbox, tag).text = str(value)
    return etree.tostring(root, pretty_print=True)


def sample_files():
    """Yields (relative path, bytes) of every file of the sample, in a fixed order."""
    rng = np.random.default_rng(SEED)
    for index in range(NUM_IMAGES):
        width, height = SIZES[rng.integers(len(SIZES))]
        image = _background(rng, width, height)
        objects = [] if index % NEGATIVE_EVERY == 0 else _objects(rng, width, height)
        for name, box in objects:
            jitter = rng.integers(-20, 21, size=3)
            color = tuple(int(c) for c in np.clip(np.add(CLASS_COLORS[name], jitter), 0, 255))
            _draw(image, name, box, color)
        suffix = ".png" if index % PNG_EVERY == 5 else ".jpg"
        stem = f"shapes_{index:03d}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 85] if suffix == ".jpg" else []
        yield f"{stem}{suffix}", cv2.imencode(suffix, image, params)[1].tobytes()
        if objects:
            yield f"{stem}.xml", _annotation_xml(f"{stem}{suffix}", width, height, objects)


def write_sample(path):
    with atomic_output(path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        folder = zipfile.ZipInfo(f"{TOP_FOLDER}/", _ZIP_DATE)
        folder.external_attr = 0o40755 << 16
        archive.writestr(folder, b"")
        for name, data in sample_files():
            info = zipfile.ZipInfo(f"{TOP_FOLDER}/{name}", _ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = (
                zipfile.ZIP_DEFLATED if name.endswith(".xml") else zipfile.ZIP_STORED
            )
            archive.writestr(info, data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m efficientdet.data.sample OUT.zip")
    write_sample(Path(sys.argv[1]))
