"""`efficientdet unpack`: safely extract dataset archives into one fresh folder, untouched."""

import logging
import os
from pathlib import Path

from efficientdet.atomic import atomic_output
from efficientdet.data.archive import safe_extract

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument(
        "--archive",
        required=True,
        nargs="+",
        type=Path,
        help="the dataset archives (zip or tar, possibly compressed), unpacked side by side",
    )
    parser.add_argument("--output", required=True, type=Path, help="folder to create")
    parser.add_argument(
        "--max_gb",
        type=float,
        default=50.0,
        help="refuse archives that inflate to more than this many GB in all",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="processes writing a zip's files"
    )


def run(args):
    max_bytes = int(args.max_gb * 1e9)
    with atomic_output(args.output, directory=True) as folder:
        safe_extract(args.archive, folder, max_bytes, max(1, args.threads))
    log.info("%s unpacked into %s", ", ".join(map(str, args.archive)), args.output)
