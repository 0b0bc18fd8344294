"""The train/val split: seeded, class-aware, or from the dataset's ImageSets lists."""

import collections

from efficientdet.cli import main
from efficientdet.data.annotations import ImageEntry, write_table
from efficientdet.data.objects import VocObject
from efficientdet.data.split import seeded_split


def _entries(classes_per_image, image_set="", start=1):
    return [
        ImageEntry(
            i,
            f"img{i:03d}.jpg",
            "",
            "jpeg",
            10,
            10,
            image_set,
            tuple(VocObject(name, 0, 0, 5, 5) for name in names),
        )
        for i, names in enumerate(classes_per_image, start=start)
    ]


def _classes(entries):
    return {name for entry in entries for name in entry.class_names}


def test_seeded_split_is_deterministic_and_follows_the_fraction():
    entries = _entries([["a"], ["b"], []] * 30)
    train, val = seeded_split(entries, 0.7, seed=3)
    again_train, again_val = seeded_split(list(reversed(entries)), 0.7, seed=3)
    assert [e.image_id for e in train] == [e.image_id for e in again_train]
    assert [e.image_id for e in val] == [e.image_id for e in again_val]
    assert len(val) == 27 and len(train) == 63
    assert {e.image_id for e in train} | {e.image_id for e in val} == set(range(1, 91))
    _, other_val = seeded_split(entries, 0.7, seed=4)
    assert {e.image_id for e in other_val} != {e.image_id for e in val}


def test_every_class_reaches_val_when_it_has_two_images():
    entries = _entries(
        [["common"]] * 60 + [["rare1"], ["rare1"], ["rare2", "common"], ["rare2"], ["single"]]
    )
    for seed in range(10):
        train, val = seeded_split(entries, 0.9, seed)
        assert _classes(val) == {"common", "rare1", "rare2"}
        assert _classes(train) == {"common", "rare1", "rare2", "single"}


def test_split_command_writes_lists_and_honours_image_sets(tmp_path):
    entries = _entries([["a"]] * 4, image_set="val") + _entries([["a"]] * 2, "train", start=5)
    write_table(tmp_path / "annotations.csv", entries)
    args = [
        "split",
        "--annotations",
        tmp_path / "annotations.csv",
        "--train_fraction",
        "0.5",
        "--train_output",
        tmp_path / "train.txt",
        "--val_output",
        tmp_path / "val.txt",
    ]
    assert main(map(str, args)) == 0
    assert (tmp_path / "train.txt").read_text() == "img005.jpg\nimg006.jpg\n"
    assert (tmp_path / "val.txt").read_text() == "img001.jpg\nimg002.jpg\nimg003.jpg\nimg004.jpg\n"


def test_split_command_refuses_a_single_image(tmp_path, caplog):
    write_table(tmp_path / "annotations.csv", _entries([["a"]]))
    args = [
        "split",
        "--annotations",
        tmp_path / "annotations.csv",
        "--train_output",
        tmp_path / "train.txt",
        "--val_output",
        tmp_path / "val.txt",
    ]
    assert main(map(str, args)) == 1
    assert "cannot split 1 image(s) into non-empty train and val" in caplog.text
    assert not (tmp_path / "train.txt").exists() and not (tmp_path / "val.txt").exists()


def test_negatives_are_split_like_other_images():
    entries = _entries([["a"]] * 50 + [[]] * 50)
    train, val = seeded_split(entries, 0.8, seed=0)
    negatives = collections.Counter(bool(e.objects) for e in val)
    assert len(val) == 20 and negatives[False] > 0 and negatives[True] > 0
