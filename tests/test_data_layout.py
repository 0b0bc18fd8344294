"""Finding image/annotation pairs in the common dataset layouts, and indexing them."""

import pandas as pd
import pytest
import yaml

from data_helpers import index_dataset, voc_xml, write_image, write_pair
from efficientdet.data.annotations import read_frame, read_table
from efficientdet.data.voc_layout import find_pairs
from efficientdet.errors import UserError

DOG = [("dog", 2, 3, 40, 30)]


def _pairs(root):
    pairs, warnings = find_pairs(root)
    return {
        str(p.image): (str(p.annotation) if p.annotation else None, p.image_set) for p in pairs
    }, warnings


def _vocdevkit(root, year="VOC2012", stems=("a", "b", "c", "d"), lists=None):
    voc = root / "VOCdevkit" / year
    for stem in stems:
        write_pair(voc / "JPEGImages", stem, DOG, xml_folder=voc / "Annotations")
        # Segmentation masks share the stems of the photos; they must not become images.
        write_image(voc / "SegmentationClass" / f"{stem}.png")
    for name, listed in (lists or {}).items():
        (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{s}\n" for s in listed))
    return voc


def test_vocdevkit_with_train_val_lists(tmp_path):
    lists = {"train": ["a", "b", "c"], "val": ["c", "zzz"], "trainval": ["a", "b", "c"]}
    _vocdevkit(tmp_path, lists=lists)
    pairs, warnings = _pairs(tmp_path)
    prefix = "VOCdevkit/VOC2012"
    assert pairs == {
        f"{prefix}/JPEGImages/a.jpg": (f"{prefix}/Annotations/a.xml", "train"),
        f"{prefix}/JPEGImages/b.jpg": (f"{prefix}/Annotations/b.xml", "train"),
        f"{prefix}/JPEGImages/c.jpg": (f"{prefix}/Annotations/c.xml", "val"),
        f"{prefix}/JPEGImages/d.jpg": (f"{prefix}/Annotations/d.xml", ""),
    }
    assert any("1 listed image(s) not in JPEGImages/, skipped: zzz" in w for w in warnings)
    assert any("1 image(s) in neither train.txt nor val.txt" in w for w in warnings)
    assert f"{prefix}/JPEGImages/c.jpg: listed in both val.txt and train.txt; kept in val only" in (
        warnings
    )
    assert any("4 image(s) outside the VOC JPEGImages/ folders ignored" in w for w in warnings)


def test_vocdevkit_trainval_test_lists_and_two_years(tmp_path):
    _vocdevkit(tmp_path, "VOC2007", ("x1", "x2"), lists={"trainval": ["x1"], "test": ["x2"]})
    _vocdevkit(tmp_path, "VOC2012", ("y1", "y2"))
    pairs, _ = _pairs(tmp_path)
    assert {image: image_set for image, (_, image_set) in pairs.items()} == {
        "VOCdevkit/VOC2007/JPEGImages/x1.jpg": "train",
        "VOCdevkit/VOC2007/JPEGImages/x2.jpg": "val",
        "VOCdevkit/VOC2012/JPEGImages/y1.jpg": "",
        "VOCdevkit/VOC2012/JPEGImages/y2.jpg": "",
    }


def test_labelimg_flat_folder_inside_one_top_folder(tmp_path):
    top = tmp_path / "my-dataset"
    write_pair(top, "img1", DOG)
    write_pair(top, "img2", DOG, suffix=".png")
    write_image(top / "background.jpg")
    write_image(top / ".hidden.jpg")
    write_image(tmp_path / "__MACOSX" / "my-dataset" / "._img1.jpg")
    pairs, warnings = _pairs(tmp_path)
    assert pairs == {
        "my-dataset/background.jpg": (None, ""),
        "my-dataset/img1.jpg": ("my-dataset/img1.xml", ""),
        "my-dataset/img2.png": ("my-dataset/img2.xml", ""),
    }
    assert warnings == []


def test_images_and_annotations_folders_with_any_names(tmp_path):
    for split in ("train", "val"):
        write_pair(
            tmp_path / "pics" / split, "same_stem", DOG, xml_folder=tmp_path / "labels" / split
        )
    write_pair(tmp_path / "pics" / "train", "other", DOG, xml_folder=tmp_path / "labels")
    pairs, _ = _pairs(tmp_path)
    assert pairs == {
        "pics/train/other.jpg": ("labels/other.xml", ""),
        "pics/train/same_stem.jpg": ("labels/train/same_stem.xml", ""),
        "pics/val/same_stem.jpg": ("labels/val/same_stem.xml", ""),
    }


def test_ambiguous_stems_are_an_error(tmp_path):
    write_pair(tmp_path, "img", DOG)
    write_image(tmp_path / "img.png")
    with pytest.raises(UserError, match=r"img.xml: ambiguous image, several files share its stem"):
        find_pairs(tmp_path)


def test_index_writes_table_label_map_and_report(tmp_path):
    voc = tmp_path / "voc"
    write_pair(voc, "b", [("zebra", 1, 1, 20, 20), ("ant", 5.5, 6, 30, 40)], size=(64, 48))
    write_pair(voc, "a", [("ant", 0, 0, 70, 10)], size=(64, 48))
    write_image(voc / "c.jpg", 32, 32)
    out = tmp_path / "out"
    assert index_dataset(voc, out) == 0
    table = read_frame(out / "annotations.csv")
    assert table[["image_id", "image", "class", "xmin", "xmax"]].fillna(-1).values.tolist() == [
        [1, "a.jpg", "ant", 0, 64],
        [2, "b.jpg", "zebra", 1, 20],
        [2, "b.jpg", "ant", 5.5, 30],
        [3, "c.jpg", "", -1, -1],
    ]
    assert pd.read_csv(out / "annotations.csv")["width"].tolist() == [64, 64, 64, 32]
    assert yaml.safe_load((out / "label_map.yaml").read_text()) == {1: "ant", 2: "zebra"}
    report = (out / "report.txt").read_text().splitlines()
    assert report[0].endswith("3 images (1 without objects), 3 objects, 1 warnings")
    assert "a.xml: box 1 (ant) reaches outside the 64x48 image (0,0,70,10); clipped" in report[1]
    assert report[2] == "1 image(s) without objects kept as negative examples: c.jpg"
    assert [entry.class_names for entry in read_table(out / "annotations.csv")] == [
        {"ant"},
        {"ant", "zebra"},
        set(),
    ]


def test_index_with_a_given_label_map_keeps_its_ids(tmp_path):
    voc = tmp_path / "voc"
    (voc / "a.xml").parent.mkdir(parents=True)
    write_image(voc / "a.jpg")
    (voc / "a.xml").write_bytes(voc_xml([("cat", 1, 1, 9, 9)]))
    out = tmp_path / "out"
    assert index_dataset(voc, out, "--label_map", '{"7": "cat", "3": "dog"}') == 0
    assert yaml.safe_load((out / "label_map.yaml").read_text()) == {3: "dog", 7: "cat"}
    assert "class 'dog' has no object in the dataset" in (out / "report.txt").read_text()


def test_split_from_lists_chosen_by_name_across_years(tmp_path):
    _vocdevkit(
        tmp_path,
        "VOC2007",
        ("x1", "x2", "x3"),
        lists={"trainval": ["x1", "x2"], "test": ["x3"], "train": ["x1"], "val": ["x2"]},
    )
    _vocdevkit(tmp_path, "VOC2012", ("y1", "y2"), lists={"trainval": ["y1", "y2"]})
    pairs, warnings = find_pairs(
        tmp_path,
        {"train": ["VOC2007/trainval", "VOCdevkit/VOC2012/trainval"], "val": ["VOC2007/test"]},
    )
    assert {str(p.image).split("/")[-1]: p.image_set for p in pairs} == {
        "x1.jpg": "train",
        "x2.jpg": "train",
        "x3.jpg": "val",
        "y1.jpg": "train",
        "y2.jpg": "train",
    }

    pairs, warnings = find_pairs(tmp_path, {"train": ["VOC2007/train"], "val": ["VOC2007/val"]})
    assert {str(p.image).split("/")[-1]: p.image_set for p in pairs} == {
        "x1.jpg": "train",
        "x2.jpg": "val",
        "x3.jpg": "",
        "y1.jpg": "",
        "y2.jpg": "",
    }
    assert "VOCdevkit/VOC2012: no list of dataset.splits names it, its images are left out" in (
        warnings
    )


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "VOC2007/tranval",
            "dataset.splits: no image-set list 'VOC2007/tranval'; the dataset has "
            "VOCdevkit/VOC2007/test, VOCdevkit/VOC2007/trainval, VOCdevkit/VOC2012/trainval",
        ),
        (
            "trainval",
            "dataset.splits: 'trainval' is ambiguous, it names "
            "VOCdevkit/VOC2007/trainval, VOCdevkit/VOC2012/trainval",
        ),
    ],
)
def test_unknown_or_ambiguous_list_name(tmp_path, caplog, name, message):
    _vocdevkit(tmp_path, "VOC2007", ("x1", "x2"), lists={"trainval": ["x1"], "test": ["x2"]})
    _vocdevkit(tmp_path, "VOC2012", ("y1",), lists={"trainval": ["y1"]})
    # A per-class list (id and 1/-1) is not an image-set list.
    (tmp_path / "VOCdevkit/VOC2007/ImageSets/Main/dog_test.txt").write_text("x2 1\n")
    out = tmp_path / "out"
    assert index_dataset(tmp_path, out, "--train_lists", name, "--val_lists", "VOC2007/test") == 1
    assert message in caplog.text
    assert not out.exists() or list(out.iterdir()) == []
