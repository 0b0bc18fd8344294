"""`efficientdet <command>`: one subcommand per workflow stage.

Each stage module defines `add_arguments(parser)` and `run(args)`; modules are imported only
when their command runs, so data commands never import TensorFlow.
"""

import argparse
import importlib
import logging
import sys

from efficientdet.errors import UserError

COMMANDS = {
    "download": "fetch a dataset zip from a URL or path, checking its sha256",
    "unpack": "safely extract a dataset zip",
    "index": "find, parse and validate image/annotation pairs",
    "split": "split the images into train and val lists",
    "shard": "write one TFRecord shard of a split",
    "ground_truth": "write the COCO ground truth of the validation split",
    "dataset_stats": "per-class counts, objects per image and box sizes",
    "inspect": "draw boxes read back from TFRecords on sample images",
    "train": "train an EfficientDet",
    "evaluate": "COCO evaluation of one checkpoint",
    "metrics": "gather per-checkpoint evaluations into one table and plot",
    "export": "SavedModel, frozen graph, TFLite and ONNX from a checkpoint",
    "infer": "detect objects in images with any exported backend",
}


def _parser():
    parser = argparse.ArgumentParser(prog="efficientdet", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="Python logging level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command, help_text in COMMANDS.items():
        subparsers.add_parser(command, help=help_text, add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    known, rest = _parser().parse_known_args(argv)
    logging.basicConfig(
        level=known.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    module = importlib.import_module(f"efficientdet.{known.command}")
    stage_parser = argparse.ArgumentParser(
        prog=f"efficientdet {known.command}",
        description=COMMANDS[known.command],
        fromfile_prefix_chars="@",
    )
    module.add_arguments(stage_parser)
    args = stage_parser.parse_args(rest)
    try:
        module.run(args)
    except UserError as error:
        logging.getLogger("efficientdet").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
