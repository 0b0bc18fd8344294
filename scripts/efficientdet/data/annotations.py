"""The validated annotation table, results/{dataset}/annotations.csv.

One row per object: image_id (a positive int, unique in the dataset; the records' source_id and
the COCO image id), image (path under the unpacked dataset folder), annotation (its XML, empty
for an image without one), format, width, height (the real image size), image_set ("train" or
"val" when the dataset ships ImageSets lists, else empty), class, xmin, ymin, xmax, ymax (pixels,
clipped to the image), difficult, truncated. An image without objects (a negative example) has
exactly one row whose class and box columns are empty. `read_frame` reads it with pandas.

The stdlib csv module reads it here so that shard jobs stay quick to start.
"""

import csv
import itertools
import operator
from typing import NamedTuple

from efficientdet.data.objects import VocObject
from efficientdet.errors import UserError

COLUMNS = (
    "image_id",
    "image",
    "annotation",
    "format",
    "width",
    "height",
    "image_set",
    "class",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "difficult",
    "truncated",
)


class ImageEntry(NamedTuple):
    image_id: int
    image: str
    annotation: str
    format: str
    width: int
    height: int
    image_set: str
    objects: tuple  # of VocObject

    @property
    def class_names(self):
        return {box.name for box in self.objects}


def _number(value):
    return f"{value:.10g}"


def write_table(path, entries):
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for entry in entries:
            image = [
                entry.image_id,
                entry.image,
                entry.annotation,
                entry.format,
                entry.width,
                entry.height,
                entry.image_set,
            ]
            if not entry.objects:
                writer.writerow(image + [""] * 7)
            for box in entry.objects:
                writer.writerow(
                    image
                    + [
                        box.name,
                        *map(_number, (box.xmin, box.ymin, box.xmax, box.ymax)),
                        box.difficult,
                        box.truncated,
                    ]
                )


def _entry(rows):
    image_id, image, annotation, image_format, width, height, image_set = rows[0][:7]
    objects = tuple(
        VocObject(
            name, float(xmin), float(ymin), float(xmax), float(ymax), int(difficult), int(truncated)
        )
        for *_, name, xmin, ymin, xmax, ymax, difficult, truncated in rows
        if name
    )
    return ImageEntry(
        int(image_id), image, annotation, image_format, int(width), int(height), image_set, objects
    )


def read_table(path, images=None):
    """The images of the table, in its order, each with its objects; only `images` if given."""
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        if next(reader, None) != list(COLUMNS):
            raise UserError(
                f"{path}: not an annotation table (expected columns {', '.join(COLUMNS)})"
            )
        groups = (list(rows) for _, rows in itertools.groupby(reader, key=operator.itemgetter(0)))
        try:
            return [_entry(rows) for rows in groups if images is None or rows[0][1] in images]
        except (ValueError, TypeError) as error:
            raise UserError(f"{path}: malformed row ({error})") from None


def read_frame(path):
    """The table as a pandas DataFrame: class names as strings ("" for negatives, even a class
    named "NA"), empty box cells as NaN."""
    import pandas

    return pandas.read_csv(
        path,
        keep_default_na=False,
        dtype={"class": str, "image": str, "image_set": str},
        na_values={
            column: [""] for column in ("xmin", "ymin", "xmax", "ymax", "difficult", "truncated")
        },
    )


def read_image_list(path):
    """Image paths listed one per line, as in splits/{train,val}.txt."""
    with open(path, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream if line.strip()]


def read_entries(table_path, images, source):
    """The table's entries of `images` (paths), in that order; an unknown image names `source`."""
    by_image = {entry.image: entry for entry in read_table(table_path, set(images))}
    unknown = [image for image in images if image not in by_image]
    if unknown:
        raise UserError(f"{source}: {len(unknown)} image(s) not in {table_path}, e.g. {unknown[0]}")
    return [by_image[image] for image in images]


def read_split(split_path, table_path):
    """The entries of a split file's images, in the file's order."""
    return read_entries(table_path, read_image_list(split_path), split_path)
