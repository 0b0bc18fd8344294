import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ZIP = REPO / "resources" / "sample-voc.zip"
REFERENCE = REPO.parent / "shared" / "reference"
BIN = Path(sys.executable).parent

# Rules and tests call `efficientdet` and `snakemake` by name, as users do in an activated venv.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def run_snakemake(workdir, *args, timeout=900, check=True):
    """Runs the project's Snakefile with `workdir` as working directory; returns the result."""
    command = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *map(str, args),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout[-5000:]}\n{result.stderr[-10000:]}"
        )
    return result


def planned_jobs(result):
    """{rule: count} from the job stats of a dry run ({} for "Nothing to be done")."""
    table = result.stdout.split("Job stats:", 1)[-1].split("total", 1)[0]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def run_cli(*args, check=True, timeout=900):
    """Runs `efficientdet <args>` in a subprocess, as a user would."""
    result = subprocess.run(
        [str(BIN / "efficientdet"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"efficientdet {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def make_workdir(folder):
    """Puts the default config and the bundled sample zip into `folder`; returns it."""
    shutil.copytree(REPO / "config", folder / "config")
    (folder / "resources").mkdir()
    if SAMPLE_ZIP.exists():
        shutil.copy(SAMPLE_ZIP, folder / "resources" / SAMPLE_ZIP.name)
    return folder


@pytest.fixture
def workdir(tmp_path):
    """A fresh working directory holding the default config and the bundled sample zip."""
    return make_workdir(tmp_path)
