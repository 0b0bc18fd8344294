"""The official PASCAL VOC release end to end, on a tiny synthetic copy of its layout: three tar
archives (VOC2007 trainval and test fill the same VOCdevkit/VOC2007/, VOC2012 trainval beside
it), merged into one dataset with the standard VOC07+12 split, then evaluated."""

import io
import json
import tarfile
import xml.etree.ElementTree as ElementTree

import pandas as pd
import pytest
import yaml

from conftest import run_snakemake
from data_helpers import image_bytes
from efficientdet.data import tfrecord
from efficientdet.infer.infer import output_names
from evaluate_helpers import FakeRun

CLASSES = ("cat", "dog", "person")
RUN = "voc0712-efficientdet-d0"


def _xml(objects, size):
    """A VOC annotation of (name, xmin, ymin, xmax, ymax, difficult, truncated) objects."""
    return (
        f"<annotation><folder>VOC</folder><filename>x.jpg</filename><size><width>{size[0]}"
        f"</width><height>{size[1]}</height><depth>3</depth></size>"
        + "".join(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>{truncated}"
            f"</truncated><difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
            for name, xmin, ymin, xmax, ymax, difficult, truncated in objects
        )
        + "</annotation>"
    ).encode()


def _objects(index):
    """One to three objects, some difficult, some truncated, every class in every split."""
    return [
        (
            CLASSES[(index + k) % 3],
            4 + 6 * k,
            5 + 4 * k,
            30 + 6 * k,
            28 + 4 * k,
            int((index + k) % 4 == 0),
            int((index + k) % 3 == 1),
        )
        for k in range(1 + index % 3)
    ]


def _tar(path, members):
    """A plain tar, as the official files are, of {name: bytes}; folders get their own entries."""
    with tarfile.open(path, "w") as archive:
        folders = sorted(
            {name.rsplit("/", n)[0] for name in members for n in (1, 2, 3) if name.count("/") >= n}
        )
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _year(year, ids, lists, start):
    """Members of VOCdevkit/{year}: images, annotations and ImageSets/Main lists."""
    root = f"VOCdevkit/{year}"
    members = {}
    for index, image_id in enumerate(ids, start):
        size = (64 + 8 * (index % 2), 48)
        members[f"{root}/JPEGImages/{image_id}.jpg"] = image_bytes(*size, seed=index)
        members[f"{root}/Annotations/{image_id}.xml"] = _xml(_objects(index), size)
    for name, listed in lists.items():
        members[f"{root}/ImageSets/Main/{name}.txt"] = "".join(f"{i}\n" for i in listed).encode()
        # The per-class lists beside them (id and 1/-1) are not image-set lists.
        members[f"{root}/ImageSets/Main/dog_{name}.txt"] = "".join(
            f"{i} -1\n" for i in listed
        ).encode()
    return members


def official_archives(folder):
    """VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar, VOCtrainval_11-May-2012.tar.

    VOC2012 reuses the VOC2007 image id 000005: a different image under the same name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    trainval07 = ["000005", "000007", "000009", "000012", "000016", "000017"]
    test07 = ["000001", "000002", "000003", "000004", "000006"]
    trainval12 = ["000005", "2008_000008", "2008_000015", "2008_000019"]
    return [
        _tar(
            folder / "VOCtrainval_06-Nov-2007.tar",
            _year(
                "VOC2007",
                trainval07,
                {"train": trainval07[:3], "val": trainval07[3:], "trainval": trainval07},
                0,
            ),
        ),
        _tar(folder / "VOCtest_06-Nov-2007.tar", _year("VOC2007", test07, {"test": test07}, 10)),
        _tar(
            folder / "VOCtrainval_11-May-2012.tar",
            _year(
                "VOC2012",
                trainval12,
                {"train": trainval12[:2], "val": trainval12[2:], "trainval": trainval12},
                20,
            ),
        ),
    ]


def _parse_xml(path):
    """(class, xmin, ymin, xmax, ymax, difficult, truncated) of each object, read independently
    of the package."""
    objects = []
    for element in ElementTree.parse(path).getroot().iter("object"):
        box = element.find("bndbox")
        objects.append(
            (
                element.findtext("name"),
                *(float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")),
                int(element.findtext("difficult")),
                int(element.findtext("truncated")),
            )
        )
    return objects


def _records(folder, split):
    examples = []
    for path in sorted(folder.glob(f"{split}-*.tfrecord")):
        examples += [tfrecord.parse_example(data) for data in tfrecord.read_records(path)]
    return examples


def _record_objects(example):
    width, height = example[tfrecord.WIDTH][0], example[tfrecord.HEIGHT][0]
    return [
        (
            text.decode(),
            round(xmin * width, 3),
            round(ymin * height, 3),
            round(xmax * width, 3),
            round(ymax * height, 3),
            difficult,
            truncated,
        )
        for text, xmin, ymin, xmax, ymax, difficult, truncated in zip(
            example[tfrecord.CLASS_TEXT],
            example[tfrecord.BBOX_XMIN],
            example[tfrecord.BBOX_YMIN],
            example[tfrecord.BBOX_XMAX],
            example[tfrecord.BBOX_YMAX],
            example[tfrecord.DIFFICULT],
            example[tfrecord.TRUNCATED],
        )
    ]


@pytest.mark.slow
def test_voc07_plus_12_from_the_official_tars(workdir):
    archives = official_archives(workdir / "downloads")
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["dataset"].update(
        name="voc0712",
        url=[str(path.relative_to(workdir)) for path in archives],
        splits={"train": ["VOC2007/trainval", "VOC2012/trainval"], "val": ["VOC2007/test"]},
        images_per_shard=4,
    )
    config["model"]["image_size"] = 128
    config["evaluate"]["max_samples"] = None
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(workdir, "tfrecords")

    data = workdir / "results" / "voc0712"
    voc = data / "voc"
    splits = {
        split: (data / "splits" / f"{split}.txt").read_text().split() for split in ("train", "val")
    }
    assert sorted(splits["val"]) == [
        f"VOCdevkit/VOC2007/JPEGImages/{i}.jpg"
        for i in ("000001", "000002", "000003", "000004", "000006")
    ]
    assert len(splits["train"]) == 10 and sum("VOC2012" in image for image in splits["train"]) == 4

    table = pd.read_csv(data / "annotations.csv", keep_default_na=False)
    image_of_id = dict(zip(table["image_id"], table["image"]))
    for split, images in splits.items():
        examples = _records(data / "tfrecords", split)
        source_ids = [int(example[tfrecord.SOURCE_ID][0]) for example in examples]
        assert len(set(source_ids)) == len(source_ids) == len(images)
        assert sorted(image_of_id[source_id] for source_id in source_ids) == sorted(images)
        for example, source_id in zip(examples, source_ids):
            image = image_of_id[source_id]
            xml = voc / image.replace("JPEGImages", "Annotations").replace(".jpg", ".xml")
            assert _record_objects(example) == _parse_xml(xml), image
            assert example[tfrecord.ENCODED][0] == (voc / image).read_bytes()
            assert example[tfrecord.FILENAME][0].decode() == image
    # The two 000005.jpg are two images, with two ids, wherever ids or names appear.
    same_name = table[table["image"].str.endswith("/000005.jpg")]
    assert same_name["image"].nunique() == same_name["image_id"].nunique() == 2
    images = [voc / image for image in table["image"].unique()]
    assert len(set(output_names(images).values())) == len(images) == 15
    coco = json.loads((data / "val_coco.json").read_text())
    assert len({image["id"] for image in coco["images"]}) == len(coco["images"]) == 5
    assert sum(annotation["difficult"] for annotation in coco["annotations"]) >= 1

    # Evaluation of a checkpoint written directly (training itself is tested elsewhere).
    label_map = yaml.safe_load((data / "label_map.yaml").read_text())
    assert list(label_map.values()) == list(CLASSES)
    FakeRun(workdir / "models" / RUN, label_map=label_map, image_size=128).save(10)
    (workdir / "results" / RUN).mkdir(parents=True)
    (workdir / "results" / RUN / "train.done.json").write_text("{}")
    run_snakemake(workdir, "evaluate")
    evaluation = json.loads((workdir / "results" / RUN / "eval" / "ckpt-10.json").read_text())
    assert evaluation["num_images"] == 5
    assert [row["name"] for row in evaluation["per_class"]] == list(CLASSES)
    assert all(row["VOC07_AP50"] == 0.0 for row in evaluation["per_class"])
    table = pd.read_csv(workdir / "results" / RUN / "eval" / "metrics.csv")
    assert {"VOC_AP50", "VOC07_AP50", "VOC07_AP50/cat"} <= set(table.columns)
