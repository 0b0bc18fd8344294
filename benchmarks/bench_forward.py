"""Forward-pass time of an EfficientDet on this machine, as a tf.function with and without XLA.

    .venv/bin/python benchmarks/bench_forward.py                  # d0, 512x512, batch 1
    .venv/bin/python benchmarks/bench_forward.py --model efficientdet-lite0 --image-size 320

Prints the first call (tracing and compilation included) and the median and best of the
timed calls, in milliseconds.
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from efficientdet import build_model


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientdet-d0")
    parser.add_argument("--image-size", default="512", help='int or "WxH"')
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    return parser.parse_args()


def time_forward(model, images, jit_compile, warmup, runs):
    """(first call, median, best) in milliseconds."""
    forward = tf.function(lambda batch: model(batch, training=False), jit_compile=jit_compile)
    start = time.perf_counter()
    forward(images)
    first = time.perf_counter() - start
    for _ in range(warmup):
        forward(images)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        class_outputs, _ = forward(images)
        class_outputs[0].numpy()
        timings.append(time.perf_counter() - start)
    return first * 1e3, statistics.median(timings) * 1e3, min(timings) * 1e3


def main():
    args = parse_args()
    image_size = int(args.image_size) if args.image_size.isdigit() else args.image_size
    model = build_model(args.model, num_classes=90, image_size=image_size)
    height, width = model.input_shape[1:3]
    images = np.random.default_rng(0).uniform(0, 255, (args.batch_size, height, width, 3))
    images = tf.constant(images, tf.float32)
    print(
        f"{args.model} {height}x{width} batch {args.batch_size}, TensorFlow {tf.__version__}, "
        f"{args.runs} timed runs"
    )
    print(f"{'mode':<18}{'first call ms':>15}{'median ms':>12}{'best ms':>10}")
    for label, jit_compile in (("tf.function", False), ("tf.function + XLA", True)):
        first, median, best = time_forward(model, images, jit_compile, args.warmup, args.runs)
        print(f"{label:<18}{first:>15.0f}{median:>12.1f}{best:>10.1f}")


if __name__ == "__main__":
    main()
