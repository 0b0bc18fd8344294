"""Training step side by side with google/automl: `tf2.train` and `efficientdet train`, same flags.

Both train d0 from scratch on the same TFRecords, made here through `snakemake tfrecords` from
--images generated 640x480 VOC JPEGs (or from --dataset, e.g. the bundled sample, whose small
images make the step's compute, not JPEG decoding, the cost), at 256 px, batch 8, float32
(--precision mixed: float16 activations; --use_xla: XLA-compiled steps), weight average (EMA)
off, with the original's own command line on both sides. Each epoch is --steps steps and ends
with a checkpoint; the figure is the time between the checkpoints of the epochs after the first
(tracing excluded), per step, alternately --rounds times. The ratio is the original's ms/step
over ours (images/s, higher is better).

    # AUTOML_DIR, AUTOML_PY: from ../shared/tools/automl-baseline/setup.sh
    . /work/automl-env/env.sh
    .venv/bin/python benchmarks/bench_train_vs_automl.py [--rounds 2] [--epochs 3]
        [--precision mixed] [--use_xla]     # the GPU figures

Without AUTOML_DIR / AUTOML_PY only this project's figure is printed.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from automl_baseline import BIN, original_available, project_environment
from bench_data_vs_automl import make_corpus, run_project

BATCH_SIZE = 8


def epoch_step_ms(model_dir, steps):
    """ms/step of each epoch after the first, from the times its checkpoint was written."""
    times = sorted(path.stat().st_mtime for path in model_dir.rglob("ckpt-*.index"))
    return [round(1000 * (end - start) / steps) for start, end in zip(times, times[1:])]


def train(command, model_dir, records, hparams, epochs, steps, **kwargs):
    shutil.rmtree(model_dir, ignore_errors=True)
    result = subprocess.run(
        [
            *command,
            "--mode=train",
            f"--train_file_pattern={records}",
            "--model_name=efficientdet-d0",
            f"--model_dir={model_dir}",
            f"--batch_size={BATCH_SIZE}",
            f"--num_examples_per_epoch={BATCH_SIZE * steps}",
            f"--num_epochs={epochs}",
            f"--hparams={hparams}",
        ],
        capture_output=True,
        text=True,
        **kwargs,
    )
    output = result.stdout + result.stderr
    if result.returncode:
        sys.exit(f"{command[0]} failed:\n{output[-3000:]}")
    return epoch_step_ms(model_dir, steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--dataset", type=Path, help="a VOC archive instead of generated images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_train")
    parser.add_argument(
        "--precision",
        choices=("float32", "mixed"),
        default="float32",
        help="mixed: float16 activations on both sides (a GPU: on CPUs the original keeps float32)",
    )
    parser.add_argument(
        "--use_xla",
        action="store_true",
        help="XLA-compiled steps on both sides (a GPU: the original's auto-clustering skips CPUs)",
    )
    args = parser.parse_args()
    mixed = args.precision == "mixed"
    args.workdir.mkdir(parents=True, exist_ok=True)
    archive = args.dataset.resolve() if args.dataset else make_corpus(args.workdir, args.images)[1]
    run_project(archive, args.workdir / "records")
    records = args.workdir / "records" / "results" / "bench" / "tfrecords" / "train-*.tfrecord"
    label_map = yaml.safe_load((records.parents[1] / "label_map.yaml").read_text())
    # The original counts the background in num_classes; the generated corpus has its VOC ids.
    common = {"num_classes": max(label_map) + 1, "image_size": 256, "moving_average_decay": 0}
    common |= {} if args.dataset else {"label_map": "voc"}
    hparams = args.workdir / "hparams.yaml"
    hparams.write_text(yaml.safe_dump(common))
    # The original takes mixed precision as an hparam; this project as --mixed_precision.
    original_hparams = args.workdir / "hparams_original.yaml"
    original_hparams.write_text(yaml.safe_dump(common | {"mixed_precision": mixed}))
    xla = ["--use_xla=true"] if args.use_xla else []
    precision = "mixed_float16" if mixed else "float32"
    has_original = original_available()
    print(
        f"{archive.name}: d0, 256 px, batch {BATCH_SIZE}, {precision}, XLA "
        f"{'on' if args.use_xla else 'off'}, EMA off, {args.steps} steps per epoch"
    )
    for round_ in range(1, args.rounds + 1):
        ours = train(
            [str(BIN / "efficientdet"), "train", f"--mixed_precision={precision}", *xla],
            args.workdir / "ours",
            records,
            hparams,
            args.epochs,
            args.steps,
            env=project_environment(),
        )
        line = f"round {round_}: this project {statistics.median(ours):.0f} ms/step {ours}"
        if has_original:
            original = train(
                [os.environ["AUTOML_PY"], "-m", "tf2.train", *xla],
                args.workdir / "original",
                records,
                original_hparams,
                args.epochs,
                args.steps,
                cwd=os.environ["AUTOML_DIR"],
            )
            ratio = statistics.median(original) / statistics.median(ours)
            line += (
                f"; google/automl {statistics.median(original):.0f} ms/step {original}; "
                f"ratio {ratio:.2f}x images/s (load average {os.getloadavg()[0]:.1f})"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
