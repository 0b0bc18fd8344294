"""The network's forward pass and training step under Keras' JAX backend (XLA), fp32 against
mixed precision: for GPU machines that have JAX but no TensorFlow.

The network (EfficientNet backbone, BiFPN, heads) is plain Keras, so it runs under any Keras
backend; the workflow's input pipeline, loss, training loop and exports are TensorFlow, so they
are not part of this figure, and google/automl (TensorFlow 1 graphs) cannot run beside it. The
training step is forward, backward and an SGD update, with the mean square of the head outputs
standing in for the detection loss (a few element-wise operations on the outputs).

    KERAS_BACKEND=jax PYTHONPATH=scripts python benchmarks/bench_network_jax.py

Prints, for each dtype policy, the median milliseconds of a forward pass at 512 (batch 1, as in
serving) and of a training step at 256 (batch 8, as in bench_train_vs_automl.py) and 64.
"""

import argparse
import os
import statistics
import time

import keras
import numpy as np

from efficientdet.model.efficientdet import build_model


def _median_ms(function, runs):
    function()  # compilation
    function()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return 1e3 * statistics.median(timings)


def _model_and_images(model_name, size, batch):
    import jax

    model = build_model(model_name, 90, (size, size))
    images = jax.device_put(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)))
    return model, images


def forward_ms(model_name, size, batch, runs):
    import jax

    model, images = _model_and_images(model_name, size, batch)
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, frozen, images):
        outputs, _ = model.stateless_call(trainable, frozen, images, training=False)
        return outputs

    return _median_ms(lambda: jax.block_until_ready(forward(trainable, frozen, images)), runs)


def train_step_ms(model_name, size, batch, runs):
    import jax

    model, images = _model_and_images(model_name, size, batch)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )

    def loss(trainable, frozen, images):
        outputs, frozen = model.stateless_call(trainable, frozen, images, training=True)
        levels = jax.tree_util.tree_leaves(outputs)
        return sum(keras.ops.mean(keras.ops.square(level)) for level in levels), frozen

    @jax.jit
    def step(state, images):
        trainable, frozen, optimizer_state = state
        (_, frozen), grads = jax.value_and_grad(loss, has_aux=True)(trainable, frozen, images)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return trainable, frozen, optimizer_state

    def run():
        nonlocal state
        state = jax.block_until_ready(step(state, images))

    return _median_ms(run, runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientdet-d0")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--policies", nargs="+", default=["float32", "mixed_bfloat16", "mixed_float16"]
    )
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    import jax

    print(
        f"{args.model} on {jax.devices()[0].device_kind}, keras {keras.__version__}, "
        f"jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    for policy in args.policies:
        keras.config.set_dtype_policy(policy)
        forward = forward_ms(args.model, 512, 1, args.runs)
        figures = [f"forward 512 batch 1: {forward:.2f} ms"]
        for batch in (8, 64):
            step = train_step_ms(args.model, 256, batch, args.runs)
            figures.append(
                f"train step 256 batch {batch}: {step:.1f} ms ({batch / step * 1e3:.0f} images/s)"
            )
        print(f"{policy:15s}", "; ".join(figures), flush=True)


if __name__ == "__main__":
    main()
