"""Finding image/annotation pairs in the common VOC folder layouts.

- VOCdevkit: any folder holding `Annotations/` and `JPEGImages/` (several, e.g. VOC2007 and
  VOC2012, may sit side by side); its `ImageSets/Main/` lists give the split: those named by
  dataset.splits, else its own train.txt + val.txt, else trainval.txt + test.txt.
- Anything else: LabelImg flat folders (img.jpg beside img.xml), images/ + annotations/ folders
  under any names, all of it possibly inside one top folder.

Pairs are made by file stem only; when several images share an annotation's stem, the one in the
same folder wins, then the one whose folder path ends like the annotation's (annotations/train/
goes with images/train/). Hidden files and macOS `__MACOSX` folders are skipped.
"""

import collections
import dataclasses
import os
from pathlib import PurePosixPath

from efficientdet.data.image_formats import IMAGE_SUFFIXES
from efficientdet.errors import UserError

SPLITS = ("train", "val")
# ImageSets/Main list files giving (train, val), in order of preference.
_IMAGE_SET_LISTS = (("train", "val"), ("trainval", "test"))
_LISTED_LIMIT = 20


@dataclasses.dataclass(frozen=True)
class Pair:
    image: PurePosixPath  # relative to the dataset folder
    annotation: PurePosixPath | None  # None: a negative example
    image_set: str = ""  # "train" or "val" when the dataset ships split lists


def _visible_files(root):
    """{folder: its visible file names, sorted} of the folders under `root` (relative to it,
    "." for root itself) that hold any, in walking order."""
    listing = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".") and name != "__MACOSX"
        )
        names = sorted(name for name in files if not name.startswith("."))
        if names:
            listing[PurePosixPath(os.path.relpath(folder, root).replace(os.sep, "/"))] = names
    return listing


def _files_in(listing, folders, keep):
    return [folder / name for folder in folders for name in listing.get(folder, ()) if keep(name)]


def _listing(paths, limit=_LISTED_LIMIT):
    shown = "\n  ".join(map(str, paths[:limit]))
    more = f"\n  ... and {len(paths) - limit} more" if len(paths) > limit else ""
    return f"\n  {shown}{more}"


def _common_trailing_folders(first, second):
    count = 0
    for a, b in zip(reversed(first.parts), reversed(second.parts)):
        if a != b:
            break
        count += 1
    return count


def _closest_image(annotation, candidates):
    if len(candidates) == 1:
        return candidates[0]

    def closeness(image):
        return (
            image.parent == annotation.parent,
            _common_trailing_folders(image.parent, annotation.parent),
        )

    best = max(map(closeness, candidates))
    chosen = [image for image in candidates if closeness(image) == best]
    if len(chosen) > 1:
        raise UserError(
            f"{annotation}: ambiguous image, several files share its stem:{_listing(chosen)}"
        )
    return chosen[0]


def _pair(images, annotations):
    by_stem = collections.defaultdict(list)
    for image in images:
        by_stem[image.stem].append(image)
    annotation_of = {}
    orphans = []
    for annotation in annotations:
        candidates = by_stem.get(annotation.stem)
        if not candidates:
            orphans.append(annotation)
            continue
        image = _closest_image(annotation, candidates)
        if image in annotation_of:
            raise UserError(f"{image}: annotated twice, by {annotation_of[image]} and {annotation}")
        annotation_of[image] = annotation
    if orphans:
        raise UserError(
            f"{len(orphans)} annotation file(s) without an image of the same stem:"
            f"{_listing(orphans)}"
        )
    return annotation_of


def _read_list(path):
    return [
        line.split()[0] for line in path.read_text(errors="replace").splitlines() if line.strip()
    ]


def _is_image_set(path):
    """An image-set list holds one image id a line; per-class lists add a 1/-1/0 column."""
    with open(path, errors="replace") as stream:
        first = next((line for line in stream if line.strip()), "")
    return len(first.split()) == 1


def _image_set_lists(root, voc_roots):
    """{name: (voc root, path)} of the image-set lists in each VOC root's ImageSets/Main, named
    like `VOCdevkit/VOC2007/trainval` (the VOC root, then the list's stem)."""
    lists = {}
    for voc_root in voc_roots:
        for path in sorted((root / voc_root / "ImageSets" / "Main").glob("*.txt")):
            if _is_image_set(path):
                lists[str(voc_root / path.stem)] = (voc_root, path)
    return lists


def _named_lists(lists, names):
    """[(voc root, path)] of the lists that `names` pick, each by its full name or its end
    (`VOC2007/trainval`)."""
    chosen = []
    for name in names:
        matches = [full for full in lists if full == name or full.endswith(f"/{name}")]
        if not matches:
            raise UserError(
                f"dataset.splits: no image-set list {name!r}; the dataset has "
                + (", ".join(lists) if lists else "none (no VOC ImageSets/Main lists)")
            )
        if len(matches) > 1:
            raise UserError(f"dataset.splits: {name!r} is ambiguous, it names {', '.join(matches)}")
        chosen.append(lists[matches[0]])
    return chosen


def _automatic_lists(main, voc_root, warnings):
    """[(split, path)] of the first pair of _IMAGE_SET_LISTS that exists, else []."""
    for train_list, val_list in _IMAGE_SET_LISTS:
        train_path, val_path = main / f"{train_list}.txt", main / f"{val_list}.txt"
        if train_path.is_file() and val_path.is_file():
            return [("val", val_path), ("train", train_path)]
    if main.is_dir():
        warnings.append(
            f"{voc_root / 'ImageSets/Main'}: "
            "no train.txt + val.txt nor trainval.txt + test.txt; "
            "lists ignored, the split is drawn by seed"
        )
    return []


def _image_sets(voc_root, images, split_lists, warnings):
    """{image: "train" | "val"} of one VOC root from `split_lists` ([(split, path)], val
    first), or {} when there are none."""
    if not split_lists:
        return {}
    image_of_stem = {image.stem: image for image in images}
    assignment = {}
    for split, path in split_lists:
        stems = _read_list(path)
        unknown = [stem for stem in stems if stem not in image_of_stem]
        if unknown:
            warnings.append(
                f"{voc_root / 'ImageSets/Main' / path.name}: {len(unknown)} listed image(s) "
                f"not in JPEGImages/, skipped: {', '.join(unknown[:10])}"
            )
        for stem in stems:
            image = image_of_stem.get(stem)
            if image is None:
                continue
            if assignment.get(image, split) != split:
                warnings.append(
                    f"{image}: listed in both {_val_list_names(split_lists)} and {path.name}; "
                    "kept in val only"
                )
                continue
            assignment[image] = split
    unlisted = [image for image in images if image not in assignment]
    if unlisted:
        names = [path.name for _, path in reversed(split_lists)]
        listed = (
            f"neither {names[0]} nor {names[1]}"
            if len(names) == 2
            else f"none of {', '.join(names)}"
        )
        warnings.append(
            f"{voc_root / 'ImageSets/Main'}: {len(unlisted)} image(s) in {listed}, "
            "left out of both splits"
        )
    return assignment


def _val_list_names(split_lists):
    return " and ".join(path.name for split, path in split_lists if split == "val")


def _voc_roots(folders):
    return sorted(
        folder.parent
        for folder in folders
        if folder.name == "JPEGImages" and folder.parent / "Annotations" in folders
    )


def _is_image(name):
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _is_xml(name):
    return os.path.splitext(name)[1].lower() == ".xml"


def _chosen_lists(root, voc_roots, split_names, warnings):
    """{voc root: [(split, path)], val first}: the lists `split_names` ({"train": [names],
    "val": [names]}) pick, or when it is None each root's own train/val (or trainval/test)."""
    if split_names is None:
        return {
            voc_root: _automatic_lists(root / voc_root / "ImageSets" / "Main", voc_root, warnings)
            for voc_root in voc_roots
        }
    lists = _image_set_lists(root, voc_roots)
    chosen = {voc_root: [] for voc_root in voc_roots}
    for split in ("val", "train"):
        for voc_root, path in _named_lists(lists, split_names[split]):
            chosen[voc_root].append((split, path))
    for voc_root, split_lists in chosen.items():
        if not split_lists:
            warnings.append(
                f"{voc_root}: no list of dataset.splits names it, its images are left out"
            )
    return chosen


def find_pairs(root, split_names=None):
    """(pairs sorted by image path, warnings) for the dataset unpacked under `root`.

    `split_names`: {"train": [list names], "val": [list names]} choosing the image-set lists
    that make the split (see _image_set_lists), or None for each VOC root's own.
    """
    listing = _visible_files(root)
    voc_roots = _voc_roots(listing.keys())
    warnings = []
    groups = []
    if voc_roots:
        image_folders = {voc_root / "JPEGImages" for voc_root in voc_roots}
        ignored = _files_in(listing, listing.keys() - image_folders, _is_image)
        if ignored:
            warnings.append(
                f"{len(ignored)} image(s) outside the VOC JPEGImages/ folders ignored, "
                f"e.g. {min(ignored)}"
            )
        chosen = _chosen_lists(root, voc_roots, split_names, warnings)
        for voc_root in voc_roots:
            images = _files_in(listing, [voc_root / "JPEGImages"], _is_image)
            annotations = _files_in(listing, [voc_root / "Annotations"], _is_xml)
            image_sets = _image_sets(voc_root, images, chosen[voc_root], warnings)
            groups.append((images, annotations, image_sets))
    else:
        if split_names is not None:
            raise UserError(
                "dataset.splits names image-set lists, but the dataset has no VOC "
                "ImageSets/Main lists (no folder holding Annotations/ and JPEGImages/)"
            )
        images = _files_in(listing, listing, _is_image)
        annotations = _files_in(listing, listing, _is_xml)
        groups.append((images, annotations, {}))
    pairs = []
    for images, annotations, image_sets in groups:
        annotation_of = _pair(images, annotations)
        pairs.extend(
            Pair(image, annotation_of.get(image), image_sets.get(image, "")) for image in images
        )
    return sorted(pairs, key=lambda pair: str(pair.image)), warnings
