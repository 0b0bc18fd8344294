"""Learning-rate schedules, optimizer, L2 decay, freezing and the weight average."""

import keras
import numpy as np
import pytest

from efficientdet.errors import UserError
from efficientdet.train import optimization


def params(**overrides):
    return {**optimization.DEFAULTS, **overrides}


def lr_at(schedule, step):
    return float(schedule(step))


def test_peak_learning_rate_scales_with_batch_size():
    assert optimization.scaled_learning_rate(params(), 64) == pytest.approx(0.08)
    assert optimization.scaled_learning_rate(params(), 8) == pytest.approx(0.01)


def test_cosine_with_linear_warmup():
    # batch 64: peak 0.08, warmup from 0.008 over 1 epoch of 10 steps, 10 epochs in all.
    schedule = optimization.learning_rate_schedule(params(), 64, 10, 10)
    assert lr_at(schedule, 0) == pytest.approx(0.008)
    assert lr_at(schedule, 5) == pytest.approx(0.008 + (0.08 - 0.008) * 0.5)
    assert lr_at(schedule, 10) == pytest.approx(0.08)
    assert lr_at(schedule, 55) == pytest.approx(0.04, rel=1e-4)  # halfway through the decay
    assert lr_at(schedule, 100) == pytest.approx(0.0, abs=1e-7)


def test_stepwise_drops():
    schedule = optimization.learning_rate_schedule(
        params(lr_decay_method="stepwise", first_lr_drop_epoch=3, second_lr_drop_epoch=6),
        64,
        10,
        10,
    )
    assert lr_at(schedule, 20) == pytest.approx(0.08)
    assert lr_at(schedule, 35) == pytest.approx(0.008)
    assert lr_at(schedule, 65) == pytest.approx(0.0008)


def test_polynomial_decay():
    schedule = optimization.learning_rate_schedule(
        params(lr_decay_method="polynomial", poly_lr_power=2.0, lr_warmup_epoch=0), 64, 10, 10
    )
    assert lr_at(schedule, 0) == pytest.approx(0.08)
    assert lr_at(schedule, 50) == pytest.approx(0.08 * 0.25)
    assert lr_at(schedule, 100) == pytest.approx(0.0, abs=1e-7)


def test_unknown_schedule_and_optimizer_are_errors():
    with pytest.raises(UserError, match="lr_decay_method"):
        optimization.learning_rate_schedule(params(lr_decay_method="exp"), 64, 10, 10)
    with pytest.raises(UserError, match="optimizer"):
        optimization.make_optimizer(params(optimizer="lamb"), 0.1)


def test_schedule_serializes():
    schedule = optimization.learning_rate_schedule(params(), 8, 5, 3)
    restored = optimization.WarmupSchedule.from_config(schedule.get_config())
    for step in (0, 3, 7, 14):
        assert lr_at(restored, step) == pytest.approx(lr_at(schedule, step))


def test_optimizers_momentum_and_clipping():
    sgd = optimization.make_optimizer(params(), 0.1)
    assert isinstance(sgd, keras.optimizers.SGD)
    assert sgd.momentum == pytest.approx(0.9)
    assert sgd.global_clipnorm == pytest.approx(10.0)
    adam = optimization.make_optimizer(params(optimizer="adam", clip_gradients_norm=0), 0.1)
    assert isinstance(adam, keras.optimizers.Adam)
    assert adam.global_clipnorm is None


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def test_l2_loss_on_kernels_only():
    model = small_model()
    decayed = [v for v in model.trainable_variables if optimization.is_decayed(v)]
    assert sorted(v.path for v in decayed) == ["conv/kernel", "depthwise/kernel", "head/kernel"]
    expected = 4e-5 * sum(float(np.sum(np.square(v.numpy()))) / 2 for v in decayed)
    assert float(optimization.l2_loss(decayed, 4e-5)) == pytest.approx(expected, rel=1e-5)
    assert float(optimization.l2_loss(decayed, 0)) == 0.0


def test_freeze_by_regex():
    model = small_model()
    frozen = optimization.freeze_variables(model, r"^(conv|bn)/")
    assert {v.path for v in frozen} == {"conv/kernel", "conv/bias", "bn/gamma", "bn/beta"}
    assert {v.path for v in model.trainable_variables} == {
        "depthwise/kernel",
        "depthwise/bias",
        "head/kernel",
        "head/bias",
    }
    assert optimization.freeze_variables(model, None) == []
    with pytest.raises(UserError, match="matches no trainable variable"):
        optimization.freeze_variables(model, "^nothing")
    with pytest.raises(UserError, match="not a regex"):
        optimization.freeze_variables(model, "(")


def test_weight_average_dynamic_decay():
    model, twin = small_model(), small_model()
    average = optimization.WeightAverage(model, twin, 0.9998)
    average.reset()
    start = [w.numpy().copy() for w in model.weights]
    assert all(np.array_equal(a.numpy(), s) for a, s in zip(twin.weights, start))
    for weight in model.weights:
        weight.assign(weight + 1.0)
    average.update(0)  # decay min(0.9998, 1/10) = 0.1: the average moves 90% of the way
    assert not twin.trainable
    for averaged, initial in zip(twin.weights, start):
        np.testing.assert_allclose(averaged.numpy(), initial + 0.9, rtol=1e-5, atol=1e-5)
    average.update(10**7)  # late in training the configured decay rules
    decay = 0.9998
    for averaged, initial in zip(twin.weights, start):
        expected = (initial + 0.9) * decay + (initial + 1.0) * (1 - decay)
        np.testing.assert_allclose(averaged.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_momentum():
    model = small_model()
    optimization.set_batch_norm_momentum(model, None)
    assert model.get_layer("bn").momentum == pytest.approx(0.99)
    optimization.set_batch_norm_momentum(model, 0.9)
    assert model.get_layer("bn").momentum == pytest.approx(0.9)
    with pytest.raises(UserError, match="batch_norm_momentum"):
        optimization.set_batch_norm_momentum(model, 1.5)
