"""A Keras layer whose sublayers build on their first call."""

import keras


class LazyLayer(keras.layers.Layer):
    """For layers made of sublayers only. Their weights are created on the first call, in call
    order, so that seeded initial values do not depend on how a layer builds; `build` exists so
    that loading a .keras file does not warn of unbuilt state."""

    def build(self, input_shape):
        pass
