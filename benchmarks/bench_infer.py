"""Inference speed of every export format on this machine: latency at batch 1, throughput at 8.

    .venv/bin/python benchmarks/bench_infer.py                    # d0 at 512, 90 classes
    .venv/bin/python benchmarks/bench_infer.py --model efficientdet-lite0 --runs 5

Exports a random-weight model into a temporary folder (as `efficientdet export` does: the
SavedModel and frozen graph run decode and NMS inside, TFLite and ONNX run the network and the
same decode and NMS outside), then times `detect` on pre-processed uint8 images: the median of
--runs calls after --warmup calls. Prints one row per format and batch size, then the ratios the
issue asks about (frozen graph vs SavedModel, int8 vs fp32 TFLite).
"""

import argparse
import logging
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from efficientdet import build_model
from efficientdet.config import get_config
from efficientdet.export.export import export_all
from efficientdet.export.metadata import write_metadata
from efficientdet.export.serving import Detector
from efficientdet.infer.backends import load_backend
from efficientdet.infer.infer import time_backend
from efficientdet.model.description import ModelDescription

FILES = {
    "saved_model": "saved_model",
    "frozen_graph": "frozen_model.pb",
    "tflite_fp32": "model_fp32.tflite",
    "tflite_fp16": "model_fp16.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientdet-d0")
    parser.add_argument("--image-size", type=int, default=None, help="default: the variant's")
    parser.add_argument("--num-classes", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--formats", nargs="+", choices=list(FILES), default=list(FILES))
    return parser.parse_args()


def export(folder, name, image_size, num_classes, seed=0):
    config = get_config(name, image_size=image_size)
    model = build_model(name, num_classes, config.image_size)
    label_map = {label_id: f"class_{label_id}" for label_id in range(1, num_classes + 1)}
    description = ModelDescription(config, num_classes, label_map)
    rng = np.random.default_rng(seed)
    calibration = [rng.integers(0, 256, (*config.image_size, 3), dtype=np.uint8) for _ in range(8)]
    detector = Detector(model, config, num_classes)
    exported = export_all(
        detector,
        description,
        folder,
        ("saved_model", "frozen_graph", "tflite", "onnx"),
        ("fp32", "fp16", "int8"),
        calibration,
    )
    write_metadata(folder, description.as_dict(), exported)
    return config


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as directory:
        folder = Path(directory)
        config = export(folder, args.model, args.image_size, args.num_classes)
        rng = np.random.default_rng(1)
        images = rng.integers(0, 256, (args.batch_size, *config.image_size, 3), dtype=np.uint8)
        rows = []
        for label in args.formats:
            backend = load_backend(folder / FILES[label])
            for batch_size in sorted({1, args.batch_size}):
                seconds = time_backend(backend, images[:batch_size], args.warmup, args.runs)
                rows.append(
                    {
                        "format": label,
                        "batch": batch_size,
                        "ms_per_image": 1000 * seconds / batch_size,
                        "images_per_s": batch_size / seconds,
                    }
                )
                print(
                    f"{label:<13} batch {batch_size}: {1000 * seconds / batch_size:8.1f} ms/image",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    height, width = config.image_size
    print(
        f"\n{args.model} {height}x{width}, {args.num_classes} classes, "
        f"median of {args.runs} runs; TensorFlow {tf.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(table.round(2).to_string(index=False))
    latency = table[table["batch"] == 1].set_index("format")["ms_per_image"]
    for first, second in (("frozen_graph", "saved_model"), ("tflite_int8", "tflite_fp32")):
        if first in latency and second in latency:
            print(f"{first} / {second} latency at batch 1: {latency[first] / latency[second]:.2f}")


if __name__ == "__main__":
    main()
