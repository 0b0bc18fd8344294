"""`efficientdet split`: train and val lists of image paths.

When the dataset ships ImageSets/Main lists (see efficientdet.data.voc_layout) they are the split.
Otherwise the split is drawn from the seed: images are shuffled, then val first receives one
image of each class (rarest first, never an image holding the last train example of a class),
then further images until it holds (1 - train_fraction) of the dataset.
"""

import collections
import logging
import random
from pathlib import Path

from efficientdet.atomic import atomic_output
from efficientdet.data.annotations import read_table
from efficientdet.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--annotations", required=True, type=Path, help="the annotation table")
    parser.add_argument("--train_fraction", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train_output", required=True, type=Path)
    parser.add_argument("--val_output", required=True, type=Path)


class _ValSelection:
    """Val images chosen so far, tracking how many train images of each class remain."""

    def __init__(self, entries):
        self.train_images = collections.Counter(
            name for entry in entries for name in entry.class_names
        )
        self.chosen = {}

    def keeps_train_classes(self, entry):
        return all(self.train_images[name] > 1 for name in entry.class_names)

    def take(self, entry):
        self.chosen[entry.image_id] = entry
        self.train_images.subtract(entry.class_names)


def seeded_split(entries, train_fraction, seed):
    """(train, val) entries drawn deterministically from `seed`."""
    order = sorted(entries, key=lambda entry: entry.image_id)
    random.Random(seed).shuffle(order)
    val_size = min(max(1, round(len(order) * (1 - train_fraction))), len(order) - 1)
    selection = _ValSelection(order)
    images_of = collections.defaultdict(list)
    for entry in order:
        for name in entry.class_names:
            images_of[name].append(entry)
    for name in sorted(images_of, key=lambda name: (len(images_of[name]), name)):
        if any(name in entry.class_names for entry in selection.chosen.values()):
            continue
        for entry in images_of[name]:
            if entry.image_id not in selection.chosen and selection.keeps_train_classes(entry):
                selection.take(entry)
                break
    for entry in order:
        if len(selection.chosen) >= val_size:
            break
        if entry.image_id not in selection.chosen and (
            selection.keeps_train_classes(entry) or not selection.chosen
        ):
            selection.take(entry)
    train = [entry for entry in order if entry.image_id not in selection.chosen]
    return train, list(selection.chosen.values())


def _warn_missing_classes(entries, train, val):
    def classes(subset):
        return {name for entry in subset for name in entry.class_names}

    all_classes = classes(entries)
    for split, subset in (("train", train), ("val", val)):
        missing = sorted(all_classes - classes(subset))
        if missing:
            log.warning("classes without an image in %s: %s", split, ", ".join(missing))


def _write_list(path, entries):
    with atomic_output(path) as temporary:
        temporary.write_text(
            "".join(f"{entry.image}\n" for entry in sorted(entries, key=lambda e: e.image_id)),
            encoding="utf-8",
        )


def run(args):
    if not 0 < args.train_fraction < 1:
        raise UserError(
            f"--train_fraction {args.train_fraction}: must lie strictly between 0 and 1"
        )
    entries = read_table(args.annotations)
    if any(entry.image_set for entry in entries):
        train = [entry for entry in entries if entry.image_set == "train"]
        val = [entry for entry in entries if entry.image_set == "val"]
        log.info("split from the dataset's ImageSets lists; train_fraction and seed unused")
    else:
        train, val = seeded_split(entries, args.train_fraction, args.seed)
    if not train or not val:
        raise UserError(
            f"{args.annotations}: cannot split {len(entries)} image(s) into non-empty train "
            f"and val ({len(train)} train, {len(val)} val)"
        )
    _warn_missing_classes(entries, train, val)
    _write_list(args.train_output, train)
    _write_list(args.val_output, val)
    log.info("%d train and %d val images", len(train), len(val))
