"""Builders of small VOC datasets and archives for the data-stage tests."""

import zipfile
from pathlib import Path

import cv2
import numpy as np

from efficientdet.cli import main


def image_bytes(width=64, height=48, suffix=".jpg", seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return cv2.imencode(suffix, pixels)[1].tobytes()


def write_image(path, width=64, height=48, seed=0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(width, height, path.suffix, seed))
    return path


def voc_xml(objects=(), size=(64, 48), filename="ignored.jpg", before_root=""):
    """A VOC annotation; objects are (name, xmin, ymin, xmax, ymax[, difficult]) tuples."""
    size_xml = (
        ""
        if size is None
        else (f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    )
    objects_xml = "".join(
        f"<object><name>{name}</name><difficult>{rest[0] if rest else 0}</difficult>"
        f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
        "</bndbox></object>"
        for name, xmin, ymin, xmax, ymax, *rest in objects
    )
    return (
        f"{before_root}<annotation><folder>elsewhere</folder><filename>{filename}</filename>"
        f"<path>/nowhere/{filename}</path>{size_xml}{objects_xml}</annotation>"
    ).encode()


def write_pair(folder, stem, objects, size=(64, 48), suffix=".jpg", xml_folder=None, seed=0):
    """An image and its annotation (in `xml_folder`, default beside the image)."""
    image = write_image(Path(folder) / f"{stem}{suffix}", *size, seed=seed)
    xml = Path(xml_folder or folder) / f"{stem}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.write_bytes(voc_xml(objects, size))
    return image, xml


def write_zip(path, entries):
    """A zip of {name: bytes}; a `ZipInfo` key keeps its attributes (links, odd names)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


INDEX_OUTPUTS = ("annotations.csv", "label_map.yaml", "report.txt")


def index_dataset(voc, out, *extra):
    """Runs `efficientdet index` in-process, writing INDEX_OUTPUTS into `out`; the exit code."""
    return main(
        [
            "index",
            "--voc",
            str(voc),
            "--annotations",
            str(out / "annotations.csv"),
            "--label_map_output",
            str(out / "label_map.yaml"),
            "--report",
            str(out / "report.txt"),
            "--threads",
            "2",
            *extra,
        ]
    )
