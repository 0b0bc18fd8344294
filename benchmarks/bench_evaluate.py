"""Time of `snakemake evaluate` when one new checkpoint appears, on the bundled sample.

Prepares the sample's records with Snakemake, then writes d0 checkpoints of random weights
directly (no training) as training leaves them, and marks training done. Times, with one
checkpoint already evaluated: the dry run that plans the work, the real run (one evaluation job
plus the metrics table) and the no-op rerun; and splits the evaluation job's time into its parts.

    .venv/bin/python benchmarks/bench_evaluate.py [--image-size 512] [--workdir DIR]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_ZIP = REPO / "resources" / "sample-voc.zip"


def snakemake(workdir, *args):
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    if result.returncode != 0:
        sys.exit(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return time.perf_counter() - started, result


def planned_evaluations(result):
    return sorted(int(step) for step in re.findall(r"wildcards: step=(\d+)", result.stdout))


class Run:
    """models/{run}/ as training leaves it, with random weights."""

    def __init__(self, model_dir, label_map, model_name, image_size):
        import tensorflow as tf

        from efficientdet import build_model
        from efficientdet.config import get_config
        from efficientdet.train.run import describe_run

        config = get_config(model_name, image_size=image_size)
        model = build_model(config.name, max(label_map), config.image_size)
        average = build_model(config.name, max(label_map), config.image_size)
        average.set_weights(model.get_weights())
        checkpoint = tf.train.Checkpoint(
            model=model, ema_model=average, epoch=tf.Variable(0, dtype=tf.int64)
        )
        self.manager = tf.train.CheckpointManager(
            checkpoint, model_dir / "checkpoints", max_to_keep=10, checkpoint_name="ckpt"
        )
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "model.yaml").write_text(
            yaml.safe_dump(describe_run(config, {}, label_map), sort_keys=False)
        )

    def save(self, step):
        self.manager.save(checkpoint_number=step)


def import_seconds():
    """Start-up of an evaluation process: Python, TensorFlow, the package."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import efficientdet.evaluate.evaluate_checkpoint"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="model input size (default: the variant's, 512 for d0)",
    )
    parser.add_argument("--model", default="efficientdet-d0")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the files there; its config/config.yaml is used if present",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_evaluate."))
    if not (workdir / "config" / "config.yaml").is_file():
        shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    (workdir / "resources").mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_ZIP, workdir / "resources" / SAMPLE_ZIP.name)
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    dataset = config["dataset"]["name"]
    run_name = config["train"]["run"] or f"{dataset}-{config['model']['name']}"

    seconds, _ = snakemake(workdir, "tfrecords", f"results/{dataset}/stats/summary.yaml")
    print(f"data stage (not part of the figures): {seconds:.1f} s")
    label_map = yaml.safe_load((workdir / f"results/{dataset}/label_map.yaml").read_text())
    num_val = len(json.loads((workdir / f"results/{dataset}/val_coco.json").read_text())["images"])

    run = Run(workdir / "models" / run_name, label_map, args.model, args.image_size)
    run.save(100)
    (workdir / "results" / run_name).mkdir(parents=True, exist_ok=True)
    (workdir / "results" / run_name / "train.done.json").write_text("{}")
    seconds, _ = snakemake(workdir, "evaluate")
    print(f"first `snakemake evaluate` (ckpt-100): {seconds:.1f} s")

    run.save(200)
    dry_seconds, dry = snakemake(workdir, "evaluate", "-n")
    print(
        f"`snakemake -n evaluate` after ckpt-200 appeared: {dry_seconds:.1f} s, "
        f"plans evaluations of steps {planned_evaluations(dry)}"
    )
    seconds, _ = snakemake(workdir, "evaluate")
    evaluation = json.loads((workdir / f"results/{run_name}/eval/ckpt-200.json").read_text())
    print(f"`snakemake evaluate` with one new checkpoint: {seconds:.1f} s, of which")
    print(
        f"  evaluation job after start-up: {evaluation['seconds']:.1f} s "
        f"({evaluation['num_images']} images, {evaluation['num_detections']} detections, "
        f"{args.model} at {'x'.join(map(str, evaluation['image_size']))}: build, restore, "
        "detect, COCO and VOC metrics, plot)"
    )
    print(f"  evaluation process start-up (imports): {import_seconds():.1f} s")
    noop_seconds, _ = snakemake(workdir, "evaluate")
    print(f"no-op `snakemake evaluate`: {noop_seconds:.1f} s")
    print(f"validation images: {num_val}; work dir: {workdir}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
