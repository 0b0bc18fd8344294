"""The tiny whole workflow (data, 2 epochs, every evaluation, export, inference) on this
machine and through a SLURM cluster (profiles/slurm), side by side, with the SLURM jobs per rule.

Needs a cluster (`bash .ci/local_slurm.sh start` gives a one-node one) and a quiet machine.

    python benchmarks/bench_slurm_dag.py [--cores 2]
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGETS = ("predictions", "evaluate")


def tiny_workdir():
    workdir = Path(tempfile.mkdtemp(prefix="bench_slurm_dag_"))
    shutil.copytree(REPO / "config", workdir / "config")
    (workdir / "resources").mkdir()
    shutil.copy(REPO / "resources" / "sample-voc.zip", workdir / "resources")
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"].update(image_size=128, hparams={"learning_rate": 0.02, "lr_warmup_epoch": 0})
    config["train"].update(batch_size=2, examples_per_epoch=4, mode="train", epochs=2)
    config["evaluate"]["max_samples"] = 4
    config["export"]["calibration_images"] = 4
    config["infer"]["batch_size"] = 2
    path.write_text(yaml.safe_dump(config))
    return workdir


def timed_snakemake(workdir, *options):
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            *options,
            *TARGETS,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
    )
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(options)} failed:\n{result.stderr[-5000:]}")
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    local_dir, slurm_dir = tiny_workdir(), tiny_workdir()
    local = timed_snakemake(local_dir, "--cores", str(args.cores))
    slurm = timed_snakemake(
        slurm_dir,
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-keep-successful-logs",
        "--max-threads",
        str(args.cores),
    )
    logs = slurm_dir / ".snakemake" / "slurm_logs"
    jobs = collections.Counter(
        path.relative_to(logs).parts[0].removeprefix("rule_") for path in logs.rglob("*.log")
    )
    print(f"snakemake {' '.join(TARGETS)} on the tiny config:")
    print(f"  local --cores {args.cores}: {local:6.0f} s")
    print(f"  SLURM:          {slurm:6.0f} s  ({slurm / local:.2f} x local)")
    print(
        "  SLURM jobs per rule: "
        + ", ".join(f"{rule} {count}" for rule, count in sorted(jobs.items()))
    )
    shutil.rmtree(local_dir)
    shutil.rmtree(slurm_dir)


if __name__ == "__main__":
    main()
