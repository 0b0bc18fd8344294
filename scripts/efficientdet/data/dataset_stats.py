"""`efficientdet dataset_stats`: per-class counts, objects per image and box sizes, as CSV and PNG.

`summary.yaml` holds the totals and `max_objects_per_image` (over every indexed image), from which
training derives `max_instances_per_image`.
"""

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from efficientdet.data.annotations import read_frame, read_image_list
from efficientdet.data.label_map import read_label_map
from efficientdet.data.voc_layout import SPLITS

OUTPUTS = (
    "class_counts.csv",
    "objects_per_image.csv",
    "box_sizes.csv",
    "summary.yaml",
    "class_counts.png",
    "objects_per_image.png",
    "box_sizes.png",
)
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--annotations", required=True, type=Path, help="the annotation table")
    parser.add_argument("--label_map", required=True, type=Path, help="label_map.yaml")
    parser.add_argument("--train", required=True, type=Path, help="the train image list")
    parser.add_argument("--val", required=True, type=Path, help="the val image list")
    parser.add_argument("--output_dir", required=True, type=Path, help="the stats folder")


def _with_splits(table, split_lists):
    split_of = {}
    for split, path in split_lists.items():
        split_of.update(dict.fromkeys(read_image_list(path), split))
    return table.assign(split=table["image"].map(split_of).fillna(""))


def _objects_per_image(table):
    per_image = table.groupby(["image_id", "split"])["class"].apply(
        lambda names: (names != "").sum()
    )
    return per_image.rename("objects").reset_index()


def _class_counts(objects, label_map):
    counts = pd.DataFrame({"label": list(label_map), "class": list(label_map.values())})
    for split in SPLITS:
        in_split = objects[objects["split"] == split]
        counts[f"objects_{split}"] = counts["class"].map(in_split["class"].value_counts()).fillna(0)
        counts[f"images_{split}"] = (
            counts["class"].map(in_split.groupby("class")["image_id"].nunique()).fillna(0)
        )
    return counts.astype(
        {column: int for column in counts.columns if column[:6] in ("object", "images")}
    )


def _box_sizes(objects):
    width = objects["xmax"] - objects["xmin"]
    height = objects["ymax"] - objects["ymin"]
    return pd.DataFrame(
        {
            "image_id": objects["image_id"],
            "split": objects["split"],
            "class": objects["class"],
            "width": width,
            "height": height,
            "area": width * height,
            "relative_size": np.sqrt(width * height / (objects["width"] * objects["height"])),
            "aspect_ratio": width / height,
        }
    )


def _bars_per_split(axes, positions, heights):
    """Train and val bars side by side at `positions`; `heights(split)` gives their heights."""
    for offset, split in zip((-0.2, 0.2), SPLITS):
        axes.bar(positions + offset, heights(split), width=0.4, label=split)
    axes.legend()


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _plot_class_counts(counts, path):
    figure = Figure(figsize=(max(6, 0.4 * len(counts)), 4))
    axes = figure.subplots()
    positions = np.arange(len(counts))
    _bars_per_split(axes, positions, lambda split: counts[f"objects_{split}"])
    axes.set_xticks(positions, counts["class"], rotation=60, ha="right")
    axes.set_ylabel("objects")
    _save(figure, path)


def _plot_objects_per_image(histogram, path):
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    _bars_per_split(axes, histogram["objects"], lambda split: histogram[f"images_{split}"])
    axes.set_xlabel("objects per image")
    axes.set_ylabel("images")
    _save(figure, path)


def _plot_box_sizes(boxes, path):
    figure = Figure(figsize=(10, 4))
    sizes, aspects = figure.subplots(1, 2)
    for name, group in boxes.groupby("class"):
        sizes.scatter(group["width"], group["height"], s=6, alpha=0.5, label=name)
    sizes.set_xlabel("box width (px)")
    sizes.set_ylabel("box height (px)")
    if boxes["class"].nunique() <= 20:
        sizes.legend(fontsize="small", markerscale=2)
    aspects.hist(np.log2(boxes["aspect_ratio"]), bins=40)
    aspects.set_xlabel("log2(width / height)")
    aspects.set_ylabel("boxes")
    _save(figure, path)


def _summary(per_image, boxes, label_map):
    def count(frame, split=None):
        return int(len(frame) if split is None else (frame["split"] == split).sum())

    return {
        "images": {"total": count(per_image), **{s: count(per_image, s) for s in SPLITS}},
        "objects": {"total": count(boxes), **{s: count(boxes, s) for s in SPLITS}},
        "negative_images": int((per_image["objects"] == 0).sum()),
        "classes": len(label_map),
        "max_objects_per_image": int(per_image["objects"].max()),
        "mean_objects_per_image": round(float(per_image["objects"].mean()), 3),
        "median_relative_box_size": round(float(boxes["relative_size"].median()), 4)
        if len(boxes)
        else None,
    }


def run(args):
    label_map = read_label_map(args.label_map)
    table = _with_splits(read_frame(args.annotations), {"train": args.train, "val": args.val})
    objects = table[table["class"] != ""]
    per_image = _objects_per_image(table)
    histogram = (
        per_image.pivot_table(index="objects", columns="split", values="image_id", aggfunc="count")
        .reindex(columns=list(SPLITS))
        .fillna(0)
        .astype(int)
        .add_prefix("images_")
        .reset_index()
    )
    counts = _class_counts(objects, label_map)
    boxes = _box_sizes(objects)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output_dir, prefix=".stats.") as temporary:
        folder = Path(temporary)
        counts.to_csv(folder / "class_counts.csv", index=False)
        histogram.to_csv(folder / "objects_per_image.csv", index=False)
        boxes.to_csv(folder / "box_sizes.csv", index=False)
        (folder / "summary.yaml").write_text(
            yaml.safe_dump(_summary(per_image, boxes, label_map), sort_keys=False)
        )
        _plot_class_counts(counts, folder / "class_counts.png")
        _plot_objects_per_image(histogram, folder / "objects_per_image.png")
        _plot_box_sizes(boxes, folder / "box_sizes.png")
        for name in OUTPUTS:
            (folder / name).replace(args.output_dir / name)
    log.info("statistics written to %s", args.output_dir)
