"""`efficientdet <command>`: one subcommand per workflow stage.

A command, its Snakemake rule and its module share one name: `efficientdet <stage>.<command>`
(e.g. `efficientdet.data.shard`) defines `add_arguments(parser)` and `run(args)`. Modules are
imported only when their command runs, so data commands never import TensorFlow.
"""

import argparse
import importlib
import logging
import sys

import configargparse

from efficientdet import flags
from efficientdet.errors import UserError

# command: (stage package, help)
COMMANDS = {
    "download": ("data", "fetch a dataset archive from a URL or path, checking its sha256"),
    "unpack": ("data", "safely extract dataset archives (zip, tar) into one folder"),
    "index": ("data", "find, parse and validate image/annotation pairs"),
    "split": ("data", "split the images into train and val lists"),
    "shard": ("data", "write one TFRecord shard of a split"),
    "ground_truth": ("data", "write the COCO ground truth of the validation split"),
    "dataset_stats": ("data", "per-class counts, objects per image and box sizes"),
    "inspect": ("data", "draw boxes read back from TFRecords on sample images"),
    "train": ("train", "train an EfficientDet"),
    "inspect_pipeline": ("train", "draw examples after the run's augmentation or eval resize"),
    "training_curves": ("train", "plot a run's losses and learning rate against the step"),
    "evaluate_checkpoint": ("evaluate", "COCO and VOC evaluation of one checkpoint"),
    "evaluate": ("evaluate", "gather per-checkpoint evaluations into one table and plot"),
    "export": ("export", "SavedModel, frozen graph, TFLite and ONNX from a checkpoint"),
    "export_report": ("export", "file sizes and agreement of the exported formats"),
    "infer": ("infer", "detect objects in images with any exported backend"),
}


def _parser():
    parser = argparse.ArgumentParser(prog="efficientdet", description=__doc__.splitlines()[0])
    parser.add_argument("--log_level", default="INFO", help="Python logging level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(command, help=help_text, add_help=False)
    return parser


def stage_parser(command):
    """The parser of `efficientdet <command>`, with the flags its module adds."""
    stage, help_text = COMMANDS[command]
    module = importlib.import_module(f"efficientdet.{stage}.{command}")
    parser = configargparse.ArgumentParser(
        prog=f"efficientdet {command}", description=help_text, add_env_var_help=False
    )
    module.add_arguments(parser)
    return module, parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    known, rest = _parser().parse_known_args(argv)
    logging.basicConfig(
        level=known.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        module, parser = stage_parser(known.command)
        module.run(flags.parse_args(parser, rest))
    except UserError as error:
        logging.getLogger("efficientdet").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
