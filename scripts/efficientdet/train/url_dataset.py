"""The original tool's `--url_dataset`: TFRecords made from a PASCAL VOC archive by this
project's own workflow (`snakemake tfrecords`), run in a folder of the training run.

The folder holds the workflow's usual layout (results/dataset/...), so a rerun finds the records
up to date and Snakemake does nothing; a changed URL or split fraction remakes them.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

from efficientdet.errors import UserError
from efficientdet.layout import DatasetFiles

log = logging.getLogger(__name__)

WORKFLOW = Path(__file__).resolve().parents[3] / "workflow" / "Snakefile"
DEFAULT_CONFIG = WORKFLOW.parents[1] / "config" / "config.yaml"
DATASET = "dataset"


def prepare(url, folder, train_fraction):
    """Runs the data stage on `url` in `folder`; returns the (train, val) TFRecord patterns."""
    if not WORKFLOW.is_file():
        raise UserError(
            f"--url_dataset needs the workflow ({WORKFLOW}): install the project "
            "from its source folder (pip install -e .)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["dataset"].update(name=DATASET, url=str(url), train_fraction=train_fraction)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log.info("preparing TFRecords of %s in %s (snakemake tfrecords)", url, folder)
    # The rules call `efficientdet`, which sits beside this interpreter.
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "tfrecords",
            "--snakefile",
            str(WORKFLOW),
            "--directory",
            str(folder),
            "--configfile",
            str(config_path),
            "--cores",
            "all",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )
    if result.returncode != 0:
        raise UserError(
            f"--url_dataset={url}: the data stage failed in {folder}:\n"
            f"{result.stderr.strip()[-3000:]}"
        )
    records = folder / DatasetFiles.named(DATASET).tfrecords
    return str(records / "train-*.tfrecord"), str(records / "val-*.tfrecord")
