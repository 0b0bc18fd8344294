"""The default config end to end: `snakemake --cores N evaluate` on the bundled sample in a
fresh folder, timed, with the COCO metrics of every checkpoint it evaluated.

Goal (issue 4): under 10 minutes on 2 CPU cores, AP50 >= 0.8 on the sample's validation split.

    python benchmarks/bench_sample_run.py [--cores 2] [--keep DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_sample_run_"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    shutil.copytree(REPO / "resources", workdir / "resources", dirs_exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    run = config["train"]["run"] or f"{config['dataset']['name']}-{config['model']['name']}"

    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            str(args.cores),
            "evaluate",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stderr[-5000:]}")

    done = json.loads((workdir / "results" / run / "train.done.json").read_text())
    metrics = pd.read_csv(workdir / "results" / run / "eval" / "metrics.csv")
    print(
        f"model {config['model']['name']} at {config['model']['image_size']}, "
        f"{config['train']['epochs']} epochs x {config['train']['examples_per_epoch']} "
        f"images, batch {config['train']['batch_size']}, hparams {config['model']['hparams']}"
    )
    print(
        f"snakemake --cores {args.cores} evaluate: {seconds:.0f} s in all "
        f"(training job {done['seconds']:.0f} s, {done['global_step']} steps)"
    )
    columns = [c for c in ("step", "AP", "AP50", "AP75", "AR100") if c in metrics.columns]
    print(metrics[columns].to_string(index=False))
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
