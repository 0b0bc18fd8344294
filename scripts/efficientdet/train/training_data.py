"""What training must know about its TFRecords: the files, label map, size and objects per image.

The workflow's data stage leaves label_map.yaml and stats/summary.yaml beside the tfrecords/
folder (results/{dataset}/); records made elsewhere are scanned instead (labels only).
"""

import dataclasses
from pathlib import Path

import tensorflow as tf
import yaml

from efficientdet.data import tfrecord
from efficientdet.data.label_map import parse_label_map, read_label_map
from efficientdet.errors import UserError
from efficientdet.layout import DatasetFiles
from efficientdet.model.description import describe_difference
from efficientdet.train.input import shard_paths


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The records to train and validate on, and what the model must be sized for."""

    train_files: list
    val_files: list
    label_map: dict
    num_train: int
    num_val: int
    max_objects: int


@dataclasses.dataclass(frozen=True)
class RecordSummary:
    """Counted from the records themselves."""

    num_examples: int
    max_objects: int
    label_map: dict


def match_files(pattern, flag):
    """Sorted files matching a glob (local or any file system TensorFlow reads), or an error
    naming the flag."""
    try:
        return shard_paths(pattern)
    except UserError:
        raise UserError(f"--{flag}={pattern}: no file matches") from None


def scan_records(files):
    """Counts examples and objects per image and collects label ids with their names."""
    features = {
        tfrecord.CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        tfrecord.CLASS_TEXT: tf.io.VarLenFeature(tf.string),
    }

    def labels(serialized):
        parsed = tf.io.parse_single_example(serialized, features)
        return tf.sparse.to_dense(parsed[tfrecord.CLASS_LABEL]), tf.sparse.to_dense(
            parsed[tfrecord.CLASS_TEXT], default_value=b""
        )

    dataset = tf.data.TFRecordDataset(files).map(labels, num_parallel_calls=tf.data.AUTOTUNE)
    num_examples, max_objects, names = 0, 0, {}
    try:
        for label_ids, texts in dataset.as_numpy_iterator():
            num_examples += 1
            max_objects = max(max_objects, len(label_ids))
            for label_id, text in zip(label_ids.tolist(), texts.tolist()):
                names.setdefault(int(label_id), text.decode() or f"class_{label_id}")
    except tf.errors.OpError as error:
        raise UserError(f"{files[0]}...: cannot read the TFRecords ({error.message})") from None
    return RecordSummary(num_examples, max_objects, dict(sorted(names.items())))


def count_records(files):
    """Number of records in `files`."""
    dataset = tf.data.TFRecordDataset(files)
    try:
        return int(dataset.reduce(0, lambda count, _: count + 1))
    except tf.errors.OpError as error:
        raise UserError(f"{files[0]}...: cannot read the TFRecords ({error.message})") from None


def load_label_map(value, source):
    """A label map from a YAML file path or an inline mapping."""
    if isinstance(value, dict):
        return parse_label_map(value, source)
    path = Path(value)
    if not path.is_file():
        raise UserError(f"{source}: label map file {path} not found")
    return read_label_map(path)


def max_objects_from_stats(path):
    """`max_objects_per_image` of a dataset_stats summary.yaml, or None without the file."""
    path = Path(path)
    if not path.is_file():
        return None
    summary = yaml.safe_load(path.read_text()) or {}
    value = summary.get("max_objects_per_image")
    if not isinstance(value, int) or value < 0:
        raise UserError(f"{path}: max_objects_per_image missing or not a count")
    return value


def describe_training_data(options, hparams):
    """Training files, label map, size and objects per image; errors for unusable data."""
    if not options.train_file_pattern:
        raise UserError("--train_file_pattern is required (TFRecords of the training split)")
    train_files = match_files(options.train_file_pattern, "train_file_pattern")
    dataset = DatasetFiles.of_records(options.train_file_pattern)
    scanned = None

    def scan():
        nonlocal scanned
        scanned = scanned or scan_records(train_files)
        return scanned

    # hparams' label_map (automl_hparams.translate made it a mapping) names the ids the
    # records must have; the dataset's own label map, when there is one, must agree.
    hparams_label_map = hparams.get("label_map")
    if options.label_map:
        label_map, source = load_label_map(options.label_map, "--label_map"), options.label_map
    elif dataset.label_map.is_file():
        source = dataset.label_map
        label_map = load_label_map(source, "label_map.yaml")
    elif hparams_label_map:
        label_map, source = hparams_label_map, None
    else:
        label_map, source = scan().label_map, None
        if not label_map:
            raise UserError(f"{options.train_file_pattern}: the records hold no object labels")
    if hparams_label_map and label_map != hparams_label_map:
        raise UserError(
            f"{source}: the dataset's label map is not the hparams label_map: "
            f"{describe_difference(hparams_label_map, label_map)}"
        )

    max_objects = hparams.get("max_instances_per_image")
    if options.dataset_stats and not Path(options.dataset_stats).is_file():
        raise UserError(f"--dataset_stats={options.dataset_stats}: file not found")
    if max_objects is None:
        stats = Path(options.dataset_stats or dataset.stats_summary)
        max_objects = max_objects_from_stats(stats)
        if max_objects is None:
            max_objects = scan().max_objects
    num_train = scanned.num_examples if scanned else count_records(train_files)
    if num_train < options.batch_size:
        raise UserError(
            f"{options.train_file_pattern}: the training split has {num_train} images, fewer "
            f"than the batch size {options.batch_size}; lower the batch size (train.batch_size)"
        )

    val_files, num_val = [], 0
    if options.mode == "traineval":
        if not options.val_file_pattern:
            raise UserError("--mode=traineval needs --val_file_pattern (validation TFRecords)")
        val_files = match_files(options.val_file_pattern, "val_file_pattern")
        num_val = count_records(val_files)
        if num_val == 0:
            raise UserError(f"{options.val_file_pattern}: the validation split is empty")
        if options.eval_samples:
            num_val = min(num_val, options.eval_samples)
    return TrainingData(
        train_files, val_files, label_map, num_train, num_val, max(int(max_objects), 1)
    )
