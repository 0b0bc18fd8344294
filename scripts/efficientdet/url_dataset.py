"""The original tool's `url_dataset`: a PASCAL VOC zip made into TFRecords inside `train`.

Runs the workflow's data stages one after the other in this process, into a folder laid out
like results/{dataset}/ (one shard per split). A folder already complete is reused.
"""

import argparse
import importlib
import logging
from pathlib import Path

from efficientdet.cli import COMMANDS

log = logging.getLogger(__name__)

TRAIN_RECORDS = "tfrecords/train-00000-of-00001.tfrecord"
VAL_RECORDS = "tfrecords/val-00000-of-00001.tfrecord"


def run_stage(command, *argv):
    """Runs `efficientdet <command> <argv>` in this process."""
    stage, _ = COMMANDS[command]
    module = importlib.import_module(f"efficientdet.{stage}.{command}")
    parser = argparse.ArgumentParser(prog=f"efficientdet {command}")
    module.add_arguments(parser)
    module.run(parser.parse_args([str(arg) for arg in argv]))


def prepare(url, folder, train_fraction):
    """TFRecords of the dataset at `url` in `folder`; returns the (train, val) file patterns."""
    folder = Path(folder)
    train, val = folder / TRAIN_RECORDS, folder / VAL_RECORDS
    if train.is_file() and val.is_file():
        log.info("%s: reusing the records prepared from url_dataset", folder)
        return str(train), str(val)
    log.info("preparing %s from %s", folder, url)
    annotations, label_map = folder / "annotations.csv", folder / "label_map.yaml"
    splits = {split: folder / "splits" / f"{split}.txt" for split in ("train", "val")}
    run_stage("download", "--source", url, "--output", folder / "dataset.zip")
    run_stage("unpack", "--archive", folder / "dataset.zip", "--output", folder / "voc")
    run_stage("index", "--voc", folder / "voc", "--annotations", annotations,
              "--label_map_output", label_map, "--report", folder / "validation_report.txt")
    run_stage("split", "--annotations", annotations, "--train_fraction", train_fraction,
              "--train_output", splits["train"], "--val_output", splits["val"])
    run_stage("ground_truth", "--annotations", annotations, "--label_map", label_map,
              "--split", splits["val"], "--output", folder / "val_coco.json")
    for split, records in (("val", val), ("train", train)):
        records.parent.mkdir(parents=True, exist_ok=True)
        run_stage("shard", "--annotations", annotations, "--label_map", label_map,
                  "--split", splits[split], "--voc", folder / "voc", "--shard_index", 0,
                  "--num_shards", 1, "--output", records)
    return str(train), str(val)
