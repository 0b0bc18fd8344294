"""`efficientdet unpack`: safely extract a dataset zip into a fresh folder, untouched."""

import logging
from pathlib import Path

from efficientdet.data.archive import safe_extract
from efficientdet.atomic import atomic_output

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--archive", required=True, type=Path, help="the dataset zip")
    parser.add_argument("--output", required=True, type=Path, help="folder to create")
    parser.add_argument(
        "--max_gb",
        type=float,
        default=50.0,
        help="refuse archives that inflate to more than this many GB",
    )


def run(args):
    max_bytes = int(args.max_gb * 1e9)
    with atomic_output(args.output, directory=True) as folder:
        safe_extract(args.archive, folder, max_bytes)
    log.info("%s unpacked into %s", args.archive, args.output)
