"""Training throughput: images/s of full training steps (forward, focal and box loss, L2 decay,
backward, optimizer, weight average) at given model sizes, on whatever device TensorFlow sees.

The batch is synthetic and fixed (random pixels, random boxes labelled onto the anchors), so the
figures measure the model's step, not the input pipeline. Warm-up steps (tracing) are excluded.

    python benchmarks/bench_train.py --sizes 256 512 --batch_size 8
    python benchmarks/bench_train.py --sizes 512 --batch_size 64 \
        --mixed_precision mixed_float16 --jit_compile
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from efficientdet import build_model  # noqa: E402
from efficientdet.config import get_config  # noqa: E402
from efficientdet.model.anchors import AnchorLabeler, generate_anchors  # noqa: E402
from efficientdet.train import optimization  # noqa: E402
from efficientdet.train.trainer import DetectionTrainer  # noqa: E402

NUM_CLASSES = 3


def synthetic_batch(config, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    height, width = config.image_size
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype("float32")
    anchors = generate_anchors(
        config.image_size,
        config.min_level,
        config.max_level,
        config.num_scales,
        config.aspect_ratios,
        config.anchor_scale,
    )
    labeler = AnchorLabeler(anchors, NUM_CLASSES)
    targets = {"cls_targets": [], "box_targets": [], "num_positives": []}
    for _ in range(batch_size):
        corners = np.sort(rng.uniform(0, 1, (3, 2, 2)), axis=1)  # 3 boxes, (min, max) x (y, x)
        boxes = np.stack(
            [
                corners[:, 0, 0] * height,
                corners[:, 0, 1] * width,
                corners[:, 1, 0] * height,
                corners[:, 1, 1] * width,
            ],
            axis=-1,
        )
        labels = rng.integers(1, NUM_CLASSES + 1, 3)
        cls_targets, box_targets, num_positives = labeler.label(
            tf.constant(boxes, tf.float32), tf.constant(labels, tf.int32)
        )
        targets["cls_targets"].append(cls_targets)
        targets["box_targets"].append(box_targets)
        targets["num_positives"].append(num_positives)
    return images, {key: tf.stack(values) for key, values in targets.items()}


def measure(model_name, image_size, batch_size, steps, warmup, jit_compile):
    config = get_config(model_name, image_size=image_size)
    params = dict(optimization.DEFAULTS)
    detector = build_model(model_name, NUM_CLASSES, config.image_size)
    average = build_model(model_name, NUM_CLASSES, config.image_size)
    trainer = DetectionTrainer(detector, average, config, params)
    trainer.compile(optimizer=optimization.make_optimizer(params, 0.01), jit_compile=jit_compile)
    trainer.optimizer.build(detector.trainable_variables)
    trainer.average.reset()
    dataset = tf.data.Dataset.from_tensors(synthetic_batch(config, batch_size)).repeat()
    started = time.perf_counter()
    trainer.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0, shuffle=False)
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started
    return warmup_seconds, seconds / steps, batch_size * steps / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", default="efficientdet-d0")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mixed_precision", default="float32")
    parser.add_argument("--jit_compile", action="store_true")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.mixed_precision)
    devices = ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU")
    print(
        f"{args.model_name}, batch {args.batch_size}, {args.mixed_precision}, "
        f"jit_compile={args.jit_compile}, devices: {devices or 'CPU'}, "
        f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
    )
    print("size  warm-up s  s/step  images/s")
    for size in args.sizes:
        warmup, per_step, images_per_second = measure(
            args.model_name, size, args.batch_size, args.steps, args.warmup, args.jit_compile
        )
        print(f"{size:4d}  {warmup:9.1f}  {per_step:6.3f}  {images_per_second:8.2f}", flush=True)


if __name__ == "__main__":
    main()
