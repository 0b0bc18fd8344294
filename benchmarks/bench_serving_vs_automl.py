"""Serving latency side by side with google/automl: SavedModel `serving_default`, one uint8 image.

Both export d0 at 512 with 90 classes and random weights (automl: `tf2.inspector --mode=export`;
here: `export_all`, as `efficientdet export` does), decode and NMS included. One process of this
project's TensorFlow then loads both SavedModels and calls them in turn, --runs times each after
--warmup calls, on one 512x512 uint8 image, so that the machine's ups and downs fall on both
alike; --rounds such processes. The ratio is the median of our latencies over the median of the
original's (lower is better).

    # AUTOML_DIR, AUTOML_PY: from ../shared/tools/automl-baseline/setup.sh
    . /work/automl-env/env.sh
    .venv/bin/python benchmarks/bench_serving_vs_automl.py [--rounds 3] [--runs 40]

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

# Prints the median latency in ms of each SavedModel given, called in turn.
TIMER = r"""
import statistics, sys, time
import numpy as np, tensorflow as tf
folders, warmup, runs = sys.argv[1:-2], int(sys.argv[-2]), int(sys.argv[-1])
image = np.random.default_rng(0).integers(0, 256, (1, 512, 512, 3))
calls = []
for folder in folders:
    loaded = tf.saved_model.load(folder)
    serving = loaded.signatures["serving_default"]
    name, spec = next(iter(serving.structured_input_signature[1].items()))
    calls.append((loaded, serving, {name: tf.constant(image, spec.dtype)}))
times = [[] for _ in folders]
for call in range(warmup + runs):
    for (_, serving, inputs), latencies in zip(calls, times):
        start = time.perf_counter()
        [value.numpy() for value in serving(**inputs).values()]
        latencies.append(time.perf_counter() - start)
print(*(1000 * statistics.median(latencies[warmup:]) for latencies in times))
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


def latencies(saved_models, warmup, runs):
    """Median ms of each SavedModel, timed in turn in one process of this project's TensorFlow."""
    result = subprocess.run(
        [sys.executable, "-c", TIMER, *map(str, saved_models), str(warmup), str(runs)],
        check=True,
        capture_output=True,
        text=True,
        env=project_environment(),
    )
    return [float(value) for value in result.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    has_original = original_available()
    original_environment = dict(os.environ)
    # This process exports ours with Keras 3, not env.sh's legacy Keras.
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as directory:
        saved_models = [export_ours(Path(directory) / "ours")]
        if has_original:
            saved_models.append(export_original(Path(directory) / "original", original_environment))
        for round_ in range(1, args.rounds + 1):
            our_ms, *original_ms = latencies(saved_models, args.warmup, args.runs)
            line = f"round {round_}: this project {our_ms:.1f} ms"
            if original_ms:
                line += (
                    f", google/automl {original_ms[0]:.1f} ms; "
                    f"latency ratio {our_ms / original_ms[0]:.2f}x"
                )
            print(line, f"(load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
