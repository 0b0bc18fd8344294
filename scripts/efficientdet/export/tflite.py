"""TFLite flatbuffers of the bare network: float32, float16 weights, or int8 calibrated on images.

The network is frozen first and converted from a constants-only SavedModel: converting Keras 3
variables directly leaves uninitialised READ_VARIABLE ops (NaN outputs) in TF 2.21.
"""

import tempfile

import numpy as np
import tensorflow as tf

from efficientdet.export.frozen_graph import save_frozen

QUANTIZATIONS = ("fp32", "fp16", "int8")


def convert_to_tflite(function, quantizations, calibration_images=None):
    """{quantization: TFLite model bytes} of `function` for each of `quantizations`.

    "fp32"; "fp16": weights in float16 (computation in float32 on CPU); "int8": weights and
    activations, calibrated on `calibration_images` (uint8 [h, w, 3] model inputs).
    """
    unknown = set(quantizations) - set(QUANTIZATIONS)
    if unknown:
        raise ValueError(f"quantizations must be among {QUANTIZATIONS}, got {sorted(unknown)}")
    if "int8" in quantizations and not calibration_images:
        raise ValueError("int8 quantization needs calibration images")
    models = {}
    with tempfile.TemporaryDirectory(prefix="tflite-") as directory:
        save_frozen(function, directory)
        for quantization in quantizations:
            converter = tf.lite.TFLiteConverter.from_saved_model(directory)
            if quantization == "fp16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            elif quantization == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.representative_dataset = lambda: (
                    [image[np.newaxis]] for image in calibration_images
                )
            models[quantization] = converter.convert()
    return models
