"""The tf.data pipeline on small TFRecord shards written here with tf.train.Example."""

import numpy as np
import pytest
import tensorflow as tf

from efficientdet.config import get_config
from efficientdet.data import tfrecord
from efficientdet.errors import UserError
from efficientdet.model.anchors import generate_anchors
from efficientdet.train import input as data_input

IMAGE_SIZE = 128
NUM_CLASSES = 3


def make_image(height, width, boxes):
    """Dark uint8 image with each integer pixel box [ymin, xmin, ymax, xmax) white."""
    image = np.full((height, width, 3), 30, np.uint8)
    for ymin, xmin, ymax, xmax in boxes:
        image[ymin:ymax, xmin:xmax] = 255
    return image


def example_bytes(image, boxes, classes, source_id, image_format="png", is_crowd=None):
    height, width = image.shape[:2]
    if image_format == "png":
        encoded = tf.io.encode_png(image)
    else:
        encoded = tf.io.encode_jpeg(image, quality=95)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    feature = {
        tfrecord.ENCODED: strings([encoded.numpy()]),
        tfrecord.FORMAT: strings([image_format.encode()]),
        tfrecord.FILENAME: strings([f"{source_id}.{image_format}".encode()]),
        tfrecord.SOURCE_ID: strings([str(source_id).encode()]),
        tfrecord.HEIGHT: ints([height]),
        tfrecord.WIDTH: ints([width]),
        tfrecord.BBOX_YMIN: floats(boxes[:, 0] / height),
        tfrecord.BBOX_XMIN: floats(boxes[:, 1] / width),
        tfrecord.BBOX_YMAX: floats(boxes[:, 2] / height),
        tfrecord.BBOX_XMAX: floats(boxes[:, 3] / width),
        tfrecord.CLASS_LABEL: ints(classes),
        tfrecord.CLASS_TEXT: strings([f"class{c}".encode() for c in classes]),
        tfrecord.AREA: floats((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
        tfrecord.DIFFICULT: ints([0] * len(classes)),
        tfrecord.TRUNCATED: ints([0] * len(classes)),
    }
    if is_crowd is not None:
        feature[tfrecord.IS_CROWD] = ints(is_crowd)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(directory, records_per_shard, num_shards, objects=2):
    """Shards train-0000i-of-0000n with records whose source_id is 100 * shard + index + 1.

    Returns {source_id: (height, width, boxes in pixels, classes)}.
    """
    truth = {}
    for shard in range(num_shards):
        path = directory / f"train-{shard:05d}-of-{num_shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for index in range(records_per_shard):
                source_id = 100 * shard + index + 1
                height, width = 64 + 8 * index, 96 - 8 * shard
                boxes = [[4 + 2 * k, 6 + 20 * k, 30 + 2 * k, 24 + 20 * k] for k in range(objects)]
                classes = [1 + (index + k) % NUM_CLASSES for k in range(objects)]
                image = make_image(height, width, boxes)
                image_format = "jpeg" if index % 2 else "png"
                writer.write(example_bytes(image, boxes, classes, source_id, image_format))
                truth[source_id] = (height, width, np.array(boxes, np.float32), classes)
    return truth


def config(**overrides):
    return get_config("efficientdet-d0", image_size=IMAGE_SIZE, **overrides)


def num_anchors():
    cfg = config()
    return generate_anchors(
        cfg.image_size,
        cfg.min_level,
        cfg.max_level,
        cfg.num_scales,
        cfg.aspect_ratios,
        cfg.anchor_scale,
    ).shape[0]


def white_extent(image):
    rows, cols = np.nonzero(np.asarray(image)[..., 0] > 200)
    return np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1], np.float32)


def test_evaluation_batches_have_the_documented_structure(tmp_path):
    truth = write_shards(tmp_path, records_per_shard=3, num_shards=2)
    dataset = data_input.make_dataset(
        str(tmp_path / "train-*.tfrecord"),
        config(),
        training=False,
        batch_size=4,
        num_classes=NUM_CLASSES,
        max_instances_per_image=5,
    )
    batches = list(dataset)
    assert [int(images.shape[0]) for images, _ in batches] == [4, 2]
    n = num_anchors()
    seen = set()
    for images, labels in batches:
        b = images.shape[0]
        assert images.dtype == tf.float32 and images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
        assert labels["cls_targets"].dtype == tf.int32 and labels["cls_targets"].shape == (b, n)
        assert labels["box_targets"].shape == (b, n, 4)
        assert labels["num_positives"].shape == (b,)
        assert labels["image_scales"].shape == (b,) and labels["source_ids"].dtype == tf.int64
        assert labels["image_sizes"].shape == (b, 2)
        assert labels["groundtruth_boxes"].shape == (b, 5, 4)
        assert labels["groundtruth_classes"].shape == (b, 5)
        for i in range(b):
            source_id = int(labels["source_ids"][i])
            seen.add(source_id)
            height, width, boxes, classes = truth[source_id]
            np.testing.assert_array_equal(labels["image_sizes"][i], [height, width])
            scale = float(labels["image_scales"][i])
            np.testing.assert_allclose(scale, max(height, width) / IMAGE_SIZE, rtol=1e-5)
            np.testing.assert_allclose(labels["groundtruth_boxes"][i, :2], boxes, atol=1e-3)
            np.testing.assert_array_equal(labels["groundtruth_boxes"][i, 2:], -1.0)
            np.testing.assert_array_equal(labels["groundtruth_classes"][i], classes + [-1] * 3)
            cls_targets = labels["cls_targets"][i].numpy()
            assert set(np.unique(cls_targets)) <= {-2, -1, *range(NUM_CLASSES)}
            positives = cls_targets >= 0
            assert positives.sum() == int(labels["num_positives"][i]) > 0
            assert set(cls_targets[positives] + 1) <= set(classes)
            np.testing.assert_array_equal(labels["box_targets"][i].numpy()[~positives], 0.0)
            # The first (white) box sits at its original place divided by the scale.
            crop = images[i].numpy()[: int(np.ceil(height / scale)), : int(boxes[0][3] / scale) + 2]
            np.testing.assert_allclose(
                white_extent(crop)[[0, 1]], boxes[0][[0, 1]] / scale, atol=1.5
            )
    assert seen == set(truth)


def test_training_batches_are_static_augmented_and_repeat(tmp_path):
    write_shards(tmp_path, records_per_shard=3, num_shards=2)
    dataset = data_input.make_dataset(
        sorted(tmp_path.glob("*.tfrecord")),
        config(autoaugment_policy="v0", jitter_min=0.5, jitter_max=1.5),
        training=True,
        batch_size=4,
        num_classes=NUM_CLASSES,
        max_instances_per_image=4,
        seed=1,
    )
    images_spec, labels_spec = dataset.element_spec
    assert images_spec.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert labels_spec["cls_targets"].shape == (4, num_anchors())
    assert labels_spec["groundtruth_boxes"].shape == (4, 4, 4)
    for _images, labels in dataset.take(4):  # 16 images from 6 records: it repeats
        boxes = (labels["groundtruth_boxes"] / labels["image_scales"][:, None, None]).numpy()
        real = labels["groundtruth_classes"].numpy() > 0
        assert np.all(boxes[real] >= 0.0) and np.all(boxes[real] <= IMAGE_SIZE + 1e-3)
        assert np.all(boxes[real][:, 2] > boxes[real][:, 0])
        assert np.all(boxes[real][:, 3] > boxes[real][:, 1])
        np.testing.assert_array_equal(labels["groundtruth_boxes"].numpy()[~real], -1.0)


def test_train_view_boxes_follow_the_pixels(tmp_path):
    write_shards(tmp_path, records_per_shard=4, num_shards=1, objects=1)
    tf.random.set_seed(5)
    examples = data_input.preprocessed_examples(
        str(tmp_path / "*.tfrecord"), config(jitter_min=0.8, jitter_max=1.6), training=True
    )
    count = 0
    for _ in range(3):
        for example in examples:
            assert example["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
            if example["boxes"].shape[0] == 1:
                np.testing.assert_allclose(
                    white_extent(example["image"]), example["boxes"][0].numpy(), atol=1.5
                )
                count += 1
    assert count >= 6


def test_shuffles_across_shards(tmp_path):
    truth = write_shards(tmp_path, records_per_shard=5, num_shards=4, objects=1)
    dataset = data_input.make_dataset(
        str(tmp_path / "train-*"),
        config(),
        training=True,
        batch_size=5,
        num_classes=NUM_CLASSES,
        repeat=False,
        max_instances_per_image=1,
    )
    orders = [[int(i) for _, labels in dataset for i in labels["source_ids"]] for _ in range(3)]
    for order in orders:
        assert sorted(order) == sorted(truth)
        shards_in_first_batch = {source_id // 100 for source_id in order[:5]}
        assert len(shards_in_first_batch) >= 2
    assert orders[0] != orders[1] or orders[1] != orders[2]
    in_shard_order = sorted(truth)
    assert all(order != in_shard_order for order in orders)


def test_pads_to_max_instances_and_rejects_more(tmp_path):
    write_shards(tmp_path, records_per_shard=1, num_shards=1, objects=4)
    pattern = str(tmp_path / "*.tfrecord")
    _, labels = next(
        iter(
            data_input.make_dataset(
                pattern,
                config(),
                training=False,
                batch_size=1,
                num_classes=NUM_CLASSES,
                max_instances_per_image=6,
            )
        )
    )
    assert labels["groundtruth_classes"].shape == (1, 6)
    np.testing.assert_array_equal(labels["groundtruth_classes"][0, 4:], -1)
    assert np.all(labels["groundtruth_classes"][0, :4].numpy() > 0)

    too_small = data_input.make_dataset(
        pattern,
        config(),
        training=False,
        batch_size=1,
        num_classes=NUM_CLASSES,
        max_instances_per_image=3,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_instances_per_image=3"):
        next(iter(too_small))


def test_label_ids_beyond_num_classes_are_rejected(tmp_path):
    write_shards(tmp_path, records_per_shard=2, num_shards=1)
    dataset = data_input.make_dataset(
        str(tmp_path / "*.tfrecord"),
        config(),
        training=False,
        batch_size=2,
        num_classes=1,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=1"):
        next(iter(dataset))


def test_crowd_objects_are_skipped_in_training_only(tmp_path):
    image = make_image(64, 64, [[4, 4, 30, 30], [34, 34, 60, 60]])
    with tf.io.TFRecordWriter(str(tmp_path / "crowd.tfrecord")) as writer:
        writer.write(
            example_bytes(image, [[4, 4, 30, 30], [34, 34, 60, 60]], [1, 2], 7, is_crowd=[0, 1])
        )
    pattern = str(tmp_path / "crowd.tfrecord")
    train = next(
        iter(
            data_input.preprocessed_examples(
                pattern, config(jitter_min=1.0, jitter_max=1.0, input_rand_hflip=False)
            )
        )
    )
    np.testing.assert_array_equal(train["classes"], [1])
    evaluation = next(iter(data_input.preprocessed_examples(pattern, config(), training=False)))
    np.testing.assert_array_equal(evaluation["classes"], [1, 2])
    np.testing.assert_allclose(
        evaluation["boxes"] * evaluation["scale"], [[4, 4, 30, 30], [34, 34, 60, 60]], atol=1e-4
    )


@pytest.mark.parametrize("num_shards", [4, 1])
def test_input_context_gives_each_pipeline_its_share(tmp_path, num_shards):
    truth = write_shards(tmp_path, records_per_shard=8 // num_shards, num_shards=num_shards)
    shares = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = data_input.make_dataset(
            str(tmp_path / "*.tfrecord"),
            config(),
            training=False,
            batch_size=4,
            num_classes=NUM_CLASSES,
            input_context=context,
        )
        batch_sizes = [int(images.shape[0]) for images, _ in dataset]
        assert batch_sizes == [2, 2]
        shares.append({int(i) for _, labels in dataset for i in labels["source_ids"]})
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(truth)


def test_runs_under_a_distribution_strategy(tmp_path):
    write_shards(tmp_path, records_per_shard=2, num_shards=2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: data_input.make_dataset(
            str(tmp_path / "*.tfrecord"),
            config(),
            training=True,
            batch_size=2,
            num_classes=NUM_CLASSES,
            input_context=context,
        )
    )
    images, labels = next(iter(distributed))
    assert images.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert labels["cls_targets"].shape == (2, num_anchors())


def test_cache_gives_the_same_evaluation_batches(tmp_path):
    write_shards(tmp_path, records_per_shard=3, num_shards=1)
    pattern = str(tmp_path / "*.tfrecord")

    def first_batch(cache):
        dataset = data_input.make_dataset(
            pattern, config(), training=False, batch_size=3, num_classes=NUM_CLASSES, cache=cache
        )
        return [next(iter(dataset)) for _ in range(2)][-1]

    plain_images, plain_labels = first_batch(False)
    cached_images, cached_labels = first_batch(tmp_path / "cache")
    np.testing.assert_array_equal(plain_images, cached_images)
    np.testing.assert_array_equal(plain_labels["cls_targets"], cached_labels["cls_targets"])
    assert list(tmp_path.glob("cache*"))


def test_no_matching_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no TFRecord file matches"):
        data_input.make_dataset(
            str(tmp_path / "missing-*.tfrecord"),
            config(),
            training=True,
            batch_size=2,
            num_classes=NUM_CLASSES,
        )


def test_image_without_objects(tmp_path):
    with tf.io.TFRecordWriter(str(tmp_path / "empty.tfrecord")) as writer:
        writer.write(example_bytes(make_image(50, 70, []), [], [], 9, is_crowd=[]))
    pattern = str(tmp_path / "empty.tfrecord")
    for training in (False, True):
        dataset = data_input.make_dataset(
            pattern,
            config(autoaugment_policy="v3"),
            training=training,
            batch_size=1,
            num_classes=NUM_CLASSES,
            max_instances_per_image=2,
        )
        _, labels = next(iter(dataset))
        assert float(labels["num_positives"][0]) == 0.0
        assert np.all(labels["cls_targets"].numpy() == -1)
        np.testing.assert_array_equal(labels["groundtruth_classes"], [[-1, -1]])


def test_unknown_autoaugment_policy_is_a_user_error(tmp_path):
    write_shards(tmp_path, records_per_shard=1, num_shards=1)
    with pytest.raises(UserError, match="autoaugment_policy"):
        data_input.make_dataset(
            str(tmp_path / "*.tfrecord"),
            config(autoaugment_policy="v7"),
            training=True,
            batch_size=1,
            num_classes=NUM_CLASSES,
        )
