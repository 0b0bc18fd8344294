"""The original tool's command line: its flags, `@params.config` files and environment variables.

`efficientdet train` and `efficientdet evaluate_checkpoint` accept the flags of the tool they
replace (`--model_name=efficientdet-d0`, `--noprofile`, ...), parameter files given as
`@params.config` or `--flagfile=params.config` (one flag per line, `#` comments) and the
environment variables it read. A value given as a flag beats one from a parameter file, which
beats the environment, which beats the default, wherever the file stands on the command line.
"""

import argparse
import dataclasses
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from efficientdet.errors import UserError

log = logging.getLogger(__name__)

PARAMS_FILE = "--flagfile"


def parse_bool(text):
    """Abseil-style boolean: true/false, 1/0, yes/no."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag: `--name=value`; `env` names the environment variable it reads."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple = ()
    env: str | None = None


ORIGINAL_FLAGS = (
    Flag(
        "mode",
        str,
        "train",
        "train, traineval (validation loss every epoch) or eval",
        choices=("train", "traineval", "eval"),
    ),
    Flag("train_file_pattern", str, None, "glob of the training TFRecords"),
    Flag("val_file_pattern", str, None, "glob of the validation TFRecords"),
    Flag("model_name", str, "efficientdet-d0", "EfficientDet variant", env="backbone_ref"),
    Flag("model_dir", str, None, "folder of the training state (checkpoints, logs)"),
    Flag(
        "pretrained_ckpt",
        str,
        None,
        "initial weights: an official or own checkpoint, or 'imagenet' for the backbone",
        env="model_ckpts",
    ),
    Flag(
        "hparams",
        str,
        "",
        "hyperparameter overrides: 'key=value,key=value', a YAML mapping, or a YAML file",
    ),
    Flag("batch_size", positive_int, 64, "global batch size", env="batch_size"),
    Flag(
        "num_epochs",
        positive_int,
        None,
        "number of epochs (None: hparams num_epochs, else 300)",
        env="num_epochs",
    ),
    Flag(
        "num_examples_per_epoch",
        positive_int,
        None,
        "training examples per epoch (default: the whole training split)",
        env="num_examples_per_epoch",
    ),
    Flag("eval_samples", positive_int, None, "validation examples to use (default: all)"),
    Flag(
        "train_valid_split",
        fraction,
        0.7,
        "fraction of images for training when a dataset is prepared from url_dataset",
    ),
    Flag("profile", parse_bool, False, "record a TensorFlow profile of a few training steps"),
    Flag(
        "url_dataset",
        str,
        None,
        "PASCAL VOC zip (URL or path) to prepare TFRecords from when no file pattern is given",
        env="url_dataset",
    ),
)


def add_flags(parser, flags):
    """Adds `flags` to a ConfigArgParse parser (efficientdet.cli makes one per command).

    ConfigArgParse reads the parameter file and lets the command line win over it; values from
    the environment become the defaults, so that the file wins over them.
    """
    parser.add_argument(
        PARAMS_FILE,
        is_config_file=True,
        metavar="FILE",
        help="file of flags, one per line (also given as @FILE)",
    )
    for flag in flags:
        kwargs = dict(dest=flag.name, default=_environment_value(flag), help=_help(flag))
        if flag.type is parse_bool:
            parser.add_argument(
                f"--{flag.name}", nargs="?", const=True, type=parse_bool, metavar="BOOL", **kwargs
            )
            parser.add_argument(
                f"--no{flag.name}", dest=flag.name, action="store_false", help=argparse.SUPPRESS
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                type=flag.type,
                choices=flag.choices or None,
                metavar=flag.name.upper(),
                **kwargs,
            )


def parse_args(parser, argv):
    """Parses `argv` of a command with the original's flags: `@params.config` stands for
    `--flagfile=params.config`; flags of the file that this tool does not know are logged and
    ignored, as are errors of the file named as such."""
    argv = [f"{PARAMS_FILE}={token[1:]}" if token.startswith("@") else token for token in argv]
    parser.exit_on_error = False
    try:
        args, unknown = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        if error.argument_name and any(
            token.split("=")[0] in error.argument_name.split("/") for token in argv
        ):
            parser.error(str(error))
        raise UserError(f"params file: {error}") from None
    from_command_line = [token for token in unknown if token in argv]
    if from_command_line:
        parser.error(f"unrecognized arguments: {' '.join(from_command_line)}")
    if unknown:
        log.warning("params file: ignoring flags this tool does not know: %s", " ".join(unknown))
    return args


def _help(flag):
    extra = f" (env {flag.env})" if flag.env else ""
    return f"{flag.help}; default {flag.default}{extra}"


def _environment_value(flag):
    text = os.environ.get(flag.env) if flag.env else None
    if not text:
        return flag.default
    try:
        return flag.type(text)
    except (ValueError, argparse.ArgumentTypeError) as error:
        raise UserError(f"environment variable {flag.env}={text!r}: {error}") from None


_ASSIGNMENT = re.compile(r",\s*(?=[A-Za-z_][\w.]*\s*=)")


def parse_hparams(value):
    """Hyperparameter overrides from a dict, a YAML file, a YAML mapping or 'k=v,k=v' text."""
    if isinstance(value, dict):
        return dict(value)
    text = (value or "").strip()
    if not text:
        return {}
    if "=" not in text and not text.startswith("{"):
        return _read_hparams_file(Path(text))
    if text.startswith("{"):
        return _mapping(yaml.safe_load(text), "--hparams")
    overrides = {}
    for item in _ASSIGNMENT.split(text):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--hparams: {item!r} is not key=value")
        overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return overrides


def _read_hparams_file(path):
    if not path.is_file():
        raise UserError(f"{path}: hparams file not found (give a YAML file or key=value pairs)")
    try:
        return _mapping(yaml.safe_load(path.read_text()) or {}, path)
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {error}") from None


def _mapping(value, source):
    if not isinstance(value, dict):
        raise UserError(f"{source}: hparams must be a mapping of name to value")
    return value
