"""Serving latency side by side with google/automl: SavedModel `serving_default`, one uint8 image.

Both export d0 at 512 with 90 classes and random weights (automl: `tf2.inspector --mode=export`;
here: `export_all`, as `efficientdet export` does), decode and NMS included. Each SavedModel is
then timed in its own process (its own Python and TensorFlow), alternately, --rounds times: the
median of --runs calls on one 512x512 uint8 image after --warmup calls. The ratio is our latency
over the original's (lower is better).

    # AUTOML_DIR, AUTOML_PY: from ../shared/tools/automl-baseline/setup.sh
    . /work/automl-env/env.sh
    .venv/bin/python benchmarks/bench_serving_vs_automl.py [--rounds 3] [--runs 20]

Without AUTOML_DIR / AUTOML_PY only this project's latency is printed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from automl_baseline import original_available, project_environment

IMAGE_SIZE = 512
NUM_CLASSES = 90

# Runs in either environment: prints the median latency in ms.
TIMER = r"""
import statistics, sys, time
import numpy as np, tensorflow as tf
serving = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
name, spec = next(iter(serving.structured_input_signature[1].items()))
image = tf.constant(np.random.default_rng(0).integers(0, 256, (1, 512, 512, 3)), spec.dtype)
warmup, runs = int(sys.argv[2]), int(sys.argv[3])
times = []
for call in range(warmup + runs):
    start = time.perf_counter()
    outputs = serving(**{name: image})
    [value.numpy() for value in outputs.values()]
    times.append(time.perf_counter() - start)
print(1000 * statistics.median(times[warmup:]))
"""


def export_ours(folder):
    from efficientdet import build_model
    from efficientdet.config import get_config
    from efficientdet.export.export import export_all
    from efficientdet.export.serving import Detector
    from efficientdet.model.description import ModelDescription

    folder.mkdir(parents=True)
    config = get_config("efficientdet-d0", image_size=IMAGE_SIZE)
    model = build_model(config.name, NUM_CLASSES, config.image_size)
    label_map = {label_id: f"class_{label_id}" for label_id in range(1, NUM_CLASSES + 1)}
    detector = Detector(model, config, NUM_CLASSES)
    export_all(
        detector,
        ModelDescription(config, NUM_CLASSES, label_map),
        folder,
        ("saved_model",),
        (),
        None,
    )
    return folder / "saved_model"


def export_original(folder, environment):
    subprocess.run(
        [
            os.environ["AUTOML_PY"],
            "-m",
            "tf2.inspector",
            "--mode=export",
            "--model_name=efficientdet-d0",
            "--model_dir=_",
            f"--saved_model_dir={folder}",
            f"--hparams=image_size={IMAGE_SIZE},num_classes={NUM_CLASSES}",
        ],
        cwd=os.environ["AUTOML_DIR"],
        check=True,
        capture_output=True,
        env=environment,
    )
    return folder


def latency(python, saved_model, warmup, runs, environment):
    result = subprocess.run(
        [python, "-c", TIMER, str(saved_model), str(warmup), str(runs)],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return float(result.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    has_original = original_available()
    original_environment = dict(os.environ)
    ours_environment = project_environment()
    # This process exports ours with Keras 3, not env.sh's legacy Keras.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as directory:
        ours = export_ours(Path(directory) / "ours")
        original = None
        if has_original:
            original = export_original(Path(directory) / "original", original_environment)
        for round_ in range(1, args.rounds + 1):
            our_ms = latency(sys.executable, ours, args.warmup, args.runs, ours_environment)
            line = f"round {round_}: this project {our_ms:.1f} ms"
            if original:
                original_ms = latency(
                    os.environ["AUTOML_PY"], original, args.warmup, args.runs, original_environment
                )
                line += (
                    f", google/automl {original_ms:.1f} ms; "
                    f"latency ratio {our_ms / original_ms:.2f}x"
                )
            print(line, f"(load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
