"""TFRecord writing and reading without TensorFlow, checked against TensorFlow itself."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.data import tfrecord
from efficientdet.errors import UserError

FEATURES = {
    tfrecord.ENCODED: [b"\xff\xd8\xff\x00binary\x00bytes"],
    tfrecord.FORMAT: [b"jpeg"],
    tfrecord.SOURCE_ID: [b"17"],
    tfrecord.HEIGHT: [480],
    tfrecord.WIDTH: [640],
    tfrecord.BBOX_XMIN: [0.0, 0.25],
    tfrecord.BBOX_YMIN: [0.125, 0.5],
    tfrecord.BBOX_XMAX: [0.5, 1.0],
    tfrecord.BBOX_YMAX: [0.75, 0.875],
    tfrecord.CLASS_LABEL: [3, 300],
    tfrecord.CLASS_TEXT: [b"dog", "caf\u00e9".encode()],
    tfrecord.AREA: [123.5, 40000.0],
    tfrecord.DIFFICULT: [0, 1],
    tfrecord.TRUNCATED: [1, 0],
    tfrecord.IS_CROWD: [0, -1],
}
NEGATIVE = {
    **FEATURES,
    **{
        key: []
        for key in (
            tfrecord.BBOX_XMIN,
            tfrecord.BBOX_YMIN,
            tfrecord.BBOX_XMAX,
            tfrecord.BBOX_YMAX,
            tfrecord.CLASS_LABEL,
            tfrecord.CLASS_TEXT,
            tfrecord.AREA,
            tfrecord.DIFFICULT,
            tfrecord.TRUNCATED,
            tfrecord.IS_CROWD,
        )
    },
}


def _tf_values(feature):
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


@pytest.mark.parametrize("features", [FEATURES, NEGATIVE], ids=["objects", "negative"])
def test_example_bytes_parse_in_tensorflow_and_back(features):
    data = tfrecord.encode_example(features)
    parsed = tf.train.Example.FromString(data).features.feature
    assert set(parsed) == set(features)
    for key, values in features.items():
        tf_values = _tf_values(parsed[key])
        if tfrecord.FEATURE_TYPES[key] == tfrecord.FLOAT:
            np.testing.assert_allclose(tf_values, values, rtol=1e-7)
        else:
            assert tf_values == values
    assert tfrecord.parse_example(data) == {
        key: (
            list(np.float32(values).tolist())
            if tfrecord.FEATURE_TYPES[key] == tfrecord.FLOAT
            else values
        )
        for key, values in features.items()
    }


def test_tf_data_reads_written_file_with_crc_checks(tmp_path):
    path = tmp_path / "shard.tfrecord"
    records = [
        tfrecord.encode_example({**FEATURES, tfrecord.SOURCE_ID: [str(i).encode()]})
        for i in range(1, 4)
    ] + [tfrecord.encode_example(NEGATIVE)]
    assert tfrecord.write_records(path, records) == 4
    spec = {
        tfrecord.SOURCE_ID: tf.io.FixedLenFeature([], tf.string),
        tfrecord.BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
        tfrecord.CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
    }
    # TFRecordDataset verifies both masked CRCs of every record.
    read = [
        tf.io.parse_single_example(record, spec) for record in tf.data.TFRecordDataset(str(path))
    ]
    assert [r[tfrecord.SOURCE_ID].numpy() for r in read] == [b"1", b"2", b"3", b"17"]
    assert tf.sparse.to_dense(read[0][tfrecord.CLASS_LABEL]).numpy().tolist() == [3, 300]
    assert tf.sparse.to_dense(read[3][tfrecord.BBOX_XMIN]).numpy().size == 0
    assert list(tfrecord.read_records(path)) == records


def test_reads_files_written_by_tensorflow(tmp_path):
    path = tmp_path / "tf.tfrecord"
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                tfrecord.SOURCE_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"9"])),
                tfrecord.AREA: tf.train.Feature(float_list=tf.train.FloatList(value=[1.5, 2.5])),
                tfrecord.CLASS_LABEL: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[1, 2**40])
                ),
            }
        )
    )
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString())
    (record,) = tfrecord.read_records(path)
    assert tfrecord.parse_example(record) == {
        tfrecord.SOURCE_ID: [b"9"],
        tfrecord.AREA: [1.5, 2.5],
        tfrecord.CLASS_LABEL: [1, 2**40],
    }


@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate"])
def test_corrupt_file_is_reported_with_its_record(tmp_path, damage):
    path = tmp_path / "shard.tfrecord"
    tfrecord.write_records(path, [tfrecord.encode_example(FEATURES)] * 2)
    data = bytearray(path.read_bytes())
    if damage == "flip_data_byte":
        data[-20] ^= 0xFF
    else:
        del data[-10:]
    path.write_bytes(bytes(data))
    with pytest.raises(
        UserError, match=r"shard.tfrecord: record 1: data CRC mismatch or truncated"
    ):
        list(tfrecord.read_records(path))


def test_data_stage_modules_do_not_import_tensorflow():
    import subprocess

    code = (
        "import sys\n"
        "import efficientdet.data.download, efficientdet.data.unpack, efficientdet.data.index, "
        "efficientdet.data.split, efficientdet.data.shard, efficientdet.data.ground_truth, "
        "efficientdet.data.dataset_stats, efficientdet.data.inspect, efficientdet.data.sample\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
