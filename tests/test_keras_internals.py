"""The overrides of private Keras parts live in efficientdet.keras_internals and fail loudly,
naming the override, when the installed Keras no longer matches them."""

import keras
import pytest

from efficientdet.errors import UserError
from efficientdet.keras_internals import (
    SYMBOLIC_BUILD,
    check_keras_internals,
    flatten_layers,
)


def test_installed_keras_matches_the_overrides():
    check_keras_internals()


def test_flatten_layers_reaches_nested_sublayers():
    inner = keras.Sequential([keras.layers.Dense(2, name="inner_dense")], name="inner")
    outer = keras.Sequential([inner, keras.layers.Dense(1, name="outer_dense")])
    names = {layer.name for layer in flatten_layers(outer)}
    assert {"inner", "inner_dense", "outer_dense"} <= names


def test_changed_symbolic_build_names_the_override(monkeypatch):
    monkeypatch.setattr(keras.Model, SYMBOLIC_BUILD, lambda self, batch: None, raising=False)
    with pytest.raises(UserError, match=f"PrebuiltModel.{SYMBOLIC_BUILD}.*'batch'"):
        check_keras_internals()


def test_removed_flatten_layers_names_the_override(monkeypatch):
    monkeypatch.delattr(keras.layers.Layer, "_flatten_layers")
    with pytest.raises(UserError, match="flatten_layers: .*_flatten_layers no longer exists"):
        check_keras_internals()
