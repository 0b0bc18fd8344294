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
import dataclasses
import itertools

from efficientdet.data.voc import VocObject
from efficientdet.errors import UserError

COLUMNS = (
    "image_id", "image", "annotation", "format", "width", "height", "image_set",
    "class", "xmin", "ymin", "xmax", "ymax", "difficult", "truncated",
)


@dataclasses.dataclass(frozen=True)
class ImageEntry:
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
            image = [entry.image_id, entry.image, entry.annotation, entry.format,
                     entry.width, entry.height, entry.image_set]
            if not entry.objects:
                writer.writerow(image + [""] * 7)
            for box in entry.objects:
                writer.writerow(
                    image + [box.name, *map(_number, (box.xmin, box.ymin, box.xmax, box.ymax)),
                             box.difficult, box.truncated]
                )


def _entry(rows):
    first = rows[0]
    objects = tuple(
        VocObject(
            row["class"], float(row["xmin"]), float(row["ymin"]), float(row["xmax"]),
            float(row["ymax"]), int(row["difficult"]), int(row["truncated"]),
        )
        for row in rows if row["class"]
    )
    return ImageEntry(
        int(first["image_id"]), first["image"], first["annotation"], first["format"],
        int(first["width"]), int(first["height"]), first["image_set"], objects,
    )


def read_table(path):
    """The images of the table, in its order, each with its objects."""
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}: not an annotation table, missing columns {sorted(missing)}")
        try:
            return [
                _entry(list(rows))
                for _, rows in itertools.groupby(reader, key=lambda row: row["image_id"])
            ]
        except (ValueError, TypeError) as error:
            raise UserError(f"{path}: malformed row ({error})") from None


def read_frame(path):
    """The table as a pandas DataFrame: class names as strings ("" for negatives, even a class
    named "NA"), empty box cells as NaN."""
    import pandas

    return pandas.read_csv(
        path, keep_default_na=False, dtype={"class": str, "image": str, "image_set": str},
        na_values={column: [""] for column in ("xmin", "ymin", "xmax", "ymax", "difficult", "truncated")},
    )


def read_split(path, entries):
    """The entries listed (by image path, one per line) in a split file, in the file's order."""
    by_image = {entry.image: entry for entry in entries}
    with open(path, encoding="utf-8") as stream:
        images = [line.rstrip("\n") for line in stream if line.strip()]
    unknown = [image for image in images if image not in by_image]
    if unknown:
        raise UserError(f"{path}: {len(unknown)} image(s) not in the annotation table, e.g. {unknown[0]}")
    return [by_image[image] for image in images]
