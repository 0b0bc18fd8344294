"""The tf.data input pipeline for training and evaluation, reading TFRecord shards.

Training: shards in random order, interleaved record by record, shuffled, repeated; each image is
augmented (AutoAugment policy, horizontal flip, scale jitter with crop/pad), its boxes are
assigned to anchors, and batches of a fixed size come out. Evaluation: every record once, in
shard order, resized and padded to the model size without augmentation.
"""

import os

import tensorflow as tf

from efficientdet.data import tfrecord
from efficientdet.errors import UserError
from efficientdet.model.anchors import AnchorLabeler, generate_anchors
from efficientdet.model.preprocess import resize_and_pad
from efficientdet.train import augment, autoaugment

MAX_SHARDS_READ_AT_ONCE = 16
SHUFFLE_BUFFER = 256
PADDING = -1

_FEATURES = {
    tfrecord.ENCODED: tf.io.FixedLenFeature([], tf.string),
    tfrecord.SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    tfrecord.BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
    tfrecord.BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
    tfrecord.BBOX_YMAX: tf.io.VarLenFeature(tf.float32),
    tfrecord.BBOX_XMAX: tf.io.VarLenFeature(tf.float32),
    tfrecord.CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
    tfrecord.IS_CROWD: tf.io.VarLenFeature(tf.int64),
}


def make_dataset(
    file_pattern,
    config,
    training,
    batch_size,
    num_classes,
    *,
    max_instances_per_image=None,
    input_context=None,
    cache=False,
    repeat=None,
    drop_remainder=None,
    shuffle_buffer=SHUFFLE_BUFFER,
    seed=None,
):
    """Batches of (images, labels) for keras' fit/evaluate or a custom loop.

    Args:
        file_pattern: a glob pattern or path (str or os.PathLike), or a list of them, naming
            TFRecord shards.
        config: efficientdet.config.EfficientDetConfig (image_size, anchors, jitter_min/max,
            input_rand_hflip, autoaugment_policy, skip_crowd_during_training,
            max_instances_per_image).
        training: augment, shuffle, repeat and drop the last partial batch.
        batch_size: the global batch size; with `input_context` each input pipeline batches
            input_context.get_per_replica_batch_size(batch_size).
        num_classes: label ids must lie in 1..num_classes (checked per image).
        max_instances_per_image: length the ground truth is padded to (default: the config's).
            An image with more objects stops the pipeline with an error naming the limit.
        input_context: tf.distribute.InputContext from distribute_datasets_from_function: this
            pipeline reads only its share of the shards (of the records when there are fewer
            shards than pipelines).
        cache: False, True (decoded images kept in memory) or a file path prefix (suffixed
            with the input pipeline id under an input_context).
        repeat: repeat forever (default: `training`).
        drop_remainder: default `training` (static batch dimension).
        shuffle_buffer: records in the shuffle buffer (training).
        seed: seed of shard order and record shuffling.

    Returns:
        tf.data.Dataset of (images, labels), B the (per-replica) batch size, N the number of
        anchors (anchors.generate_anchors order), M = max_instances_per_image:
            images: float32 [B, height, width, 3] RGB in 0..255 at config.image_size.
            labels["cls_targets"]: int32 [B, N]; label id - 1 for positive anchors, -1
                background, -2 ignored (AnchorLabeler).
            labels["box_targets"]: float32 [B, N, 4] encoded (ty, tx, th, tw); 0 off positives.
            labels["num_positives"]: float32 [B] positive anchors per image.
            labels["image_scales"]: float32 [B]; model pixels * scale = original pixels.
            labels["image_sizes"]: int32 [B, 2] original (height, width).
            labels["source_ids"]: int64 [B] image/source_id (-1 when empty).
            labels["groundtruth_boxes"]: float32 [B, M, 4] ymin, xmin, ymax, xmax: the boxes of
                the model image times image_scales, i.e. in evaluation the original-image
                boxes; padded with -1.
            labels["groundtruth_classes"]: int32 [B, M] label ids, padded with -1.
    """
    if repeat is None:
        repeat = training
    if drop_remainder is None:
        drop_remainder = training
    if max_instances_per_image is None:
        max_instances_per_image = config.max_instances_per_image
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    labeler = AnchorLabeler(
        generate_anchors(
            config.image_size,
            config.min_level,
            config.max_level,
            config.num_scales,
            config.aspect_ratios,
            config.anchor_scale,
        ),
        num_classes,
    )

    def to_model_inputs(example):
        example = prepare_example(example, config, training)
        with tf.control_dependencies(_label_checks(example, num_classes)):
            return _model_inputs(example, labeler, max_instances_per_image)

    examples = decoded_examples(
        file_pattern,
        training,
        input_context=input_context,
        cache=cache,
        repeat=repeat,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
    )
    dataset = examples.map(
        to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training
    )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def preprocessed_examples(file_pattern, config, training=True, seed=None):
    """Single examples as the model sees them, for drawing ("train view through augmentation").

    Yields dicts: image float32 [height, width, 3] in 0..255, boxes float32 [K, 4] ymin, xmin,
    ymax, xmax in model pixels, classes int32 [K] label ids, scale, image_size, source_id.
    Each record once, augmented when `training`.
    """
    examples = decoded_examples(file_pattern, training, repeat=False, seed=seed)
    return examples.map(lambda example: prepare_example(example, config, training))


def decoded_examples(
    file_pattern,
    training,
    input_context=None,
    cache=False,
    repeat=False,
    shuffle_buffer=SHUFFLE_BUFFER,
    seed=None,
):
    """Decoded records (see decode_example): this pipeline's share, shuffled when training."""
    records = _read_records(shard_paths(file_pattern), training, input_context, seed)

    def shuffle_and_repeat(dataset):
        if repeat:
            dataset = dataset.repeat()
        if training:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed)
        return dataset

    def decode(records):
        return records.map(
            decode_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training
        )

    if cache:
        return shuffle_and_repeat(decode(records).cache(_cache_path(cache, input_context)))
    return decode(shuffle_and_repeat(records))


def _cache_path(cache, input_context):
    """'' (memory) for cache=True; a file prefix per input pipeline, as workers may share a disk."""
    if cache is True:
        return ""
    if input_context is None:
        return os.fspath(cache)
    return f"{os.fspath(cache)}-{input_context.input_pipeline_id}"


def shard_paths(file_pattern):
    """Sorted paths of the files matching a pattern or path, or a list of them."""
    patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else file_pattern
    paths = set()
    for pattern in patterns:
        matches = tf.io.gfile.glob(os.fspath(pattern))
        if not matches:
            raise UserError(f"{pattern}: no TFRecord file matches")
        paths.update(matches)
    return sorted(paths)


def _read_records(paths, training, input_context, seed):
    files = tf.data.Dataset.from_tensor_slices(paths)
    pipelines = input_context.num_input_pipelines if input_context else 1
    shard_files = pipelines > 1 and len(paths) >= pipelines
    if shard_files:
        files = files.shard(pipelines, input_context.input_pipeline_id)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(paths), MAX_SHARDS_READ_AT_ONCE),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )
    if pipelines > 1 and not shard_files:
        records = records.shard(pipelines, input_context.input_pipeline_id)
    return records


def decode_example(serialized):
    """tf.train.Example bytes -> image uint8 [H, W, 3], boxes float32 [M, 4] pixels (ymin, xmin,
    ymax, xmax), classes int32 [M] label ids, is_crowd bool [M], source_id int64, image_size."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    dense = {
        key: tf.sparse.to_dense(value)
        for key, value in features.items()
        if isinstance(value, tf.SparseTensor)
    }
    image = tf.io.decode_image(features[tfrecord.ENCODED], channels=3, expand_animations=False)
    image_size = tf.shape(image)[:2]
    size = tf.cast(image_size, tf.float32)
    boxes = tf.stack(
        [
            dense[tfrecord.BBOX_YMIN] * size[0],
            dense[tfrecord.BBOX_XMIN] * size[1],
            dense[tfrecord.BBOX_YMAX] * size[0],
            dense[tfrecord.BBOX_XMAX] * size[1],
        ],
        axis=-1,
    )
    classes = tf.cast(dense[tfrecord.CLASS_LABEL], tf.int32)
    # Records without is_crowd (allowed by the format) mean no crowd objects.
    is_crowd = tf.concat([dense[tfrecord.IS_CROWD], tf.zeros_like(classes, tf.int64)], axis=0)
    source_id = features[tfrecord.SOURCE_ID]
    source_id = tf.strings.to_number(
        tf.where(tf.strings.length(source_id) > 0, source_id, "-1"), tf.int64
    )
    return {
        "image": image,
        "boxes": boxes,
        "classes": classes,
        "is_crowd": is_crowd[: tf.size(classes)] > 0,
        "source_id": source_id,
        "image_size": image_size,
    }


def prepare_example(example, config, training):
    """Augment (training) or resize and pad (evaluation) a decoded example to the model size.

    Returns a dict: image float32 [height, width, 3], boxes [K, 4] in model pixels, classes
    [K], scale (model pixels -> original pixels), image_size (original), source_id.
    """
    image, boxes, classes = example["image"], example["boxes"], example["classes"]
    if training:
        if config.skip_crowd_during_training:
            keep = ~example["is_crowd"]
            boxes, classes = tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)
        if config.autoaugment_policy:
            image, boxes = autoaugment.distort(image, boxes, config.autoaugment_policy)
        if config.input_rand_hflip:
            image, boxes = augment.random_flip_horizontal(image, boxes)
        image, boxes, classes, scale = augment.random_scale_crop_pad(
            image, boxes, classes, config.image_size, config.jitter_min, config.jitter_max
        )
    else:
        image, scale = resize_and_pad(image, config.image_size)
        boxes = boxes / scale
    return {
        "image": tf.ensure_shape(image, [*config.image_size, 3]),
        "boxes": boxes,
        "classes": classes,
        "scale": scale,
        "image_size": example["image_size"],
        "source_id": example["source_id"],
    }


def _label_checks(example, num_classes):
    classes, source_id = example["classes"], example["source_id"]
    return [
        tf.debugging.Assert(
            tf.reduce_all(classes >= 1),
            ["image/object/class/label: label ids start at 1; source_id", source_id],
        ),
        tf.debugging.Assert(
            tf.reduce_all(classes <= num_classes),
            [
                f"image/object/class/label: label id above num_classes={num_classes} (label map "
                "and model disagree); source_id",
                source_id,
            ],
        ),
    ]


def _model_inputs(example, labeler, max_instances):
    cls_targets, box_targets, num_positives = labeler.label(example["boxes"], example["classes"])
    labels = {
        "cls_targets": cls_targets,
        "box_targets": box_targets,
        "num_positives": num_positives,
        "image_scales": example["scale"],
        "image_sizes": example["image_size"],
        "source_ids": example["source_id"],
        "groundtruth_boxes": _pad(
            example["boxes"] * example["scale"], max_instances, example["source_id"]
        ),
        "groundtruth_classes": _pad(example["classes"], max_instances, example["source_id"]),
    }
    return example["image"], labels


def _pad(values, max_instances, source_id):
    """Pad the first dimension to max_instances with PADDING."""
    count = tf.shape(values)[0]
    fits = tf.debugging.Assert(
        count <= max_instances,
        [
            f"max_instances_per_image={max_instances} is below the number of objects of an image; "
            "raise it. source_id, objects:",
            source_id,
            count,
        ],
    )
    with tf.control_dependencies([fits]):
        padding = [[0, max_instances - count]] + [[0, 0]] * (len(values.shape) - 1)
        padded = tf.pad(values, padding, constant_values=PADDING)
    return tf.ensure_shape(padded, [max_instances, *values.shape[1:]])
