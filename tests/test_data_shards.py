"""The sample dataset through index, split, shard, ground truth, stats and inspect (in-process),
with every record decoded back by TensorFlow and compared with the annotation table."""

import io
import json
import math

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from pycocotools.coco import COCO

from conftest import SAMPLE_ZIP
from data_helpers import index_dataset, voc_xml, write_pair
from efficientdet.cli import main
from efficientdet.data import tfrecord
from efficientdet.data.annotations import read_split
from efficientdet.data.archive import safe_extract
from efficientdet.data.sample import write_sample

IMAGES_PER_SHARD = 40
SPLITS = ("train", "val")
SPEC = {
    tfrecord.ENCODED: tf.io.FixedLenFeature([], tf.string),
    tfrecord.FORMAT: tf.io.FixedLenFeature([], tf.string),
    tfrecord.FILENAME: tf.io.FixedLenFeature([], tf.string),
    tfrecord.SOURCE_ID: tf.io.FixedLenFeature([], tf.string),
    tfrecord.HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    tfrecord.WIDTH: tf.io.FixedLenFeature([], tf.int64),
    **{
        key: tf.io.VarLenFeature(tf.float32)
        for key in (
            tfrecord.BBOX_XMIN,
            tfrecord.BBOX_YMIN,
            tfrecord.BBOX_XMAX,
            tfrecord.BBOX_YMAX,
            tfrecord.AREA,
        )
    },
    **{
        key: tf.io.VarLenFeature(tf.int64)
        for key in (tfrecord.CLASS_LABEL, tfrecord.DIFFICULT, tfrecord.TRUNCATED, tfrecord.IS_CROWD)
    },
    tfrecord.CLASS_TEXT: tf.io.VarLenFeature(tf.string),
}


def _run(*args):
    assert main([str(arg) for arg in args]) == 0


def _shard_split(data, voc, split, images_per_shard=IMAGES_PER_SHARD):
    images = len((data / f"{split}.txt").read_text().splitlines())
    count = math.ceil(images / images_per_shard)
    paths = [data / "tfrecords" / f"{split}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]
    for index, path in enumerate(paths):
        _run(
            "shard",
            "--annotations",
            data / "annotations.csv",
            "--label_map",
            data / "label_map.yaml",
            "--split",
            data / f"{split}.txt",
            "--voc",
            voc,
            "--shard_index",
            index,
            "--num_shards",
            count,
            "--output",
            path,
        )
    return paths


def _prepare(data, voc):
    assert index_dataset(voc, data) == 0
    _run(
        "split",
        "--annotations",
        data / "annotations.csv",
        "--train_output",
        data / "train.txt",
        "--val_output",
        data / "val.txt",
    )
    return {split: _shard_split(data, voc, split) for split in SPLITS}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    data = tmp_path_factory.mktemp("sample")
    voc = data / "voc"
    voc.mkdir()
    safe_extract([SAMPLE_ZIP], voc, 10**9)
    return data, voc, _prepare(data, voc)


def _decoded(paths):
    dataset = tf.data.TFRecordDataset([str(p) for p in paths]).map(
        lambda record: tf.io.parse_single_example(record, SPEC)
    )
    for features in dataset:
        yield {
            key: tf.sparse.to_dense(value).numpy()
            if isinstance(value, tf.SparseTensor)
            else value.numpy()
            for key, value in features.items()
        }


def test_bundled_sample_is_generated_deterministically(tmp_path):
    write_sample(tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == SAMPLE_ZIP.read_bytes()
    assert SAMPLE_ZIP.stat().st_size < 3_000_000


def test_every_record_decodes_to_the_table(sample):
    data, voc, shards = sample
    label_map = yaml.safe_load((data / "label_map.yaml").read_text())
    assert label_map == {1: "circle", 2: "square", 3: "triangle"}
    label_of = {name: label_id for label_id, name in label_map.items()}
    for split, paths in shards.items():
        entries = read_split(data / f"{split}.txt", data / "annotations.csv")
        expected = {str(entry.image_id): entry for entry in entries}
        seen = []
        for record in _decoded(paths):
            entry = expected[record[tfrecord.SOURCE_ID].decode()]
            seen.append(entry.image_id)
            assert record[tfrecord.ENCODED] == (voc / entry.image).read_bytes()  # never re-encoded
            assert record[tfrecord.FORMAT].decode() == entry.format
            assert record[tfrecord.FILENAME].decode() == entry.image
            image = tf.io.decode_image(record[tfrecord.ENCODED], channels=3).numpy()
            assert (
                image.shape[:2]
                == (record[tfrecord.HEIGHT], record[tfrecord.WIDTH])
                == (entry.height, entry.width)
            )
            boxes = np.stack(
                [
                    record[key]
                    for key in (
                        tfrecord.BBOX_YMIN,
                        tfrecord.BBOX_XMIN,
                        tfrecord.BBOX_YMAX,
                        tfrecord.BBOX_XMAX,
                    )
                ],
                -1,
            )
            expected_boxes = np.array(
                [[b.ymin, b.xmin, b.ymax, b.xmax] for b in entry.objects]
            ).reshape(-1, 4)
            np.testing.assert_allclose(
                boxes * np.array([entry.height, entry.width] * 2), expected_boxes, atol=1e-4
            )
            assert record[tfrecord.CLASS_LABEL].tolist() == [
                label_of[b.name] for b in entry.objects
            ]
            assert [t.decode() for t in record[tfrecord.CLASS_TEXT]] == [
                b.name for b in entry.objects
            ]
            assert record[tfrecord.IS_CROWD].tolist() == [0] * len(entry.objects)
        assert sorted(seen) == sorted(e.image_id for e in expected.values())  # each exactly once
    assert sum(len(read_split(data / f"{s}.txt", data / "annotations.csv")) for s in SPLITS) == 150


def test_shards_are_named_sized_and_disjoint(sample):
    _, _, shards = sample
    assert [p.name for p in shards["train"]] == [
        f"train-{i:05d}-of-00003.tfrecord" for i in range(3)
    ]
    assert [p.name for p in shards["val"]] == [
        "val-00000-of-00002.tfrecord",
        "val-00001-of-00002.tfrecord",
    ]
    sizes = [sum(1 for _ in tf.data.TFRecordDataset(str(p))) for p in shards["train"]]
    assert sizes == [35, 35, 35]
    ids = [r[tfrecord.SOURCE_ID] for s in SPLITS for r in _decoded(shards[s])]
    assert len(ids) == len(set(ids)) == 150


def test_negative_images_have_records_without_objects(sample):
    _, _, shards = sample
    negatives = [
        r for s in SPLITS for r in _decoded(shards[s]) if r[tfrecord.CLASS_LABEL].size == 0
    ]
    assert len(negatives) == 8
    assert all(r[tfrecord.BBOX_XMIN].size == 0 for r in negatives)


def test_coco_ground_truth_matches_the_val_records(sample, tmp_path):
    data, _, shards = sample
    _run(
        "ground_truth",
        "--annotations",
        data / "annotations.csv",
        "--label_map",
        data / "label_map.yaml",
        "--split",
        data / "val.txt",
        "--output",
        tmp_path / "val_coco.json",
    )
    coco = COCO(str(tmp_path / "val_coco.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["circle", "square", "triangle"]
    for record in _decoded(shards["val"]):
        image_id = int(record[tfrecord.SOURCE_ID])
        (image,) = coco.loadImgs([image_id])
        assert (image["height"], image["width"]) == (
            record[tfrecord.HEIGHT],
            record[tfrecord.WIDTH],
        )
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        x, y, w, h = np.array([a["bbox"] for a in annotations]).reshape(-1, 4).T
        np.testing.assert_allclose(x / image["width"], record[tfrecord.BBOX_XMIN], atol=1e-6)
        np.testing.assert_allclose((y + h) / image["height"], record[tfrecord.BBOX_YMAX], atol=1e-6)
        assert [a["category_id"] for a in annotations] == record[tfrecord.CLASS_LABEL].tolist()
    assert len(coco.getImgIds()) == len(
        json.loads((tmp_path / "val_coco.json").read_text())["images"]
    )


def test_dataset_stats(sample, tmp_path):
    data, _, _ = sample
    _run(
        "dataset_stats",
        "--annotations",
        data / "annotations.csv",
        "--label_map",
        data / "label_map.yaml",
        "--train",
        data / "train.txt",
        "--val",
        data / "val.txt",
        "--output_dir",
        tmp_path,
    )
    summary = yaml.safe_load((tmp_path / "summary.yaml").read_text())
    assert summary["images"] == {"total": 150, "train": 105, "val": 45}
    assert summary["max_objects_per_image"] == 3
    assert summary["negative_images"] == 8
    counts = (tmp_path / "class_counts.csv").read_text().splitlines()
    assert counts[0] == "label,class,objects_train,images_train,objects_val,images_val"
    for plot in ("class_counts.png", "objects_per_image.png", "box_sizes.png"):
        assert cv2.imread(str(tmp_path / plot)) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_inspect_draws_boxes_read_from_the_records(sample, tmp_path):
    _, voc, shards = sample
    _run("inspect", "--tfrecords", *shards["val"], "--num_images", 5, "--output", tmp_path / "val")
    drawn = sorted((tmp_path / "val").iterdir())
    assert len(drawn) == 5
    first = next(_decoded(shards["val"][:1]))
    original = cv2.imdecode(np.frombuffer(first[tfrecord.ENCODED], np.uint8), cv2.IMREAD_COLOR)
    picture = cv2.imread(str(tmp_path / "val" / f"{first[tfrecord.SOURCE_ID].decode()}.jpg"))
    assert picture.shape == original.shape
    assert np.abs(picture.astype(int) - original).mean() > 1  # boxes and names were drawn


def test_inspect_reports_a_corrupt_record(sample, tmp_path, caplog):
    _, _, shards = sample
    broken = tmp_path / "broken.tfrecord"
    data = bytearray(shards["val"][0].read_bytes())
    data[5000] ^= 0x01
    broken.write_bytes(bytes(data))
    assert main(["inspect", "--tfrecords", str(broken), "--output", str(tmp_path / "out")]) == 1
    assert "broken.tfrecord: record 0: data CRC mismatch" in caplog.text
    assert not (tmp_path / "out").exists()


def test_odd_images_become_records_tensorflow_decodes(tmp_path):
    voc = tmp_path / "voc"
    write_pair(voc, "bitmap", [("dog", 1, 1, 20, 20)], suffix=".bmp")
    for mode in ("L", "CMYK"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).convert(mode).save(buffer, "JPEG")
        (voc / f"{mode}.jpg").write_bytes(buffer.getvalue())
        (voc / f"{mode}.xml").write_bytes(voc_xml([("dog", 1, 1, 20, 20)]))
    assert index_dataset(voc, tmp_path) == 0
    (tmp_path / "all.txt").write_text("CMYK.jpg\nL.jpg\nbitmap.bmp\n")
    (path,) = _shard_split(tmp_path, voc, "all")
    records = list(_decoded([path]))
    assert [r[tfrecord.FORMAT] for r in records] == [b"jpeg", b"jpeg", b"png"]
    for record in records:
        image = tf.io.decode_image(record[tfrecord.ENCODED], channels=3).numpy()
        assert image.shape == (48, 64, 3)
    red = tf.io.decode_image(records[0][tfrecord.ENCODED], channels=3).numpy()[10, 10]
    assert red[0] > 150 and red[1] < 80  # CMYK decoded to the right colour
