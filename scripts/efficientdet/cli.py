"""`efficientdet <command>`: one subcommand per workflow stage.

A command, its Snakemake rule and its module share one name: `efficientdet <stage>.<command>`
(e.g. `efficientdet.data.shard`) defines `add_arguments(parser)` and `run(args)`. Modules are
imported only when their command runs, so data commands never import TensorFlow.
"""

import argparse
import importlib
import logging
import sys

from efficientdet.errors import UserError

# command: (stage package, help)
COMMANDS = {
    "download": ("data", "fetch a dataset archive from a URL or path, checking its sha256"),
    "unpack": ("data", "safely extract a dataset archive"),
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    known, rest = _parser().parse_known_args(argv)
    logging.basicConfig(
        level=known.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stage, help_text = COMMANDS[known.command]
    module = importlib.import_module(f"efficientdet.{stage}.{known.command}")
    stage_parser = argparse.ArgumentParser(
        prog=f"efficientdet {known.command}",
        description=help_text,
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
