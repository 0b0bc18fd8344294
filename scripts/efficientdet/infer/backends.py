"""Detectors behind one interface, chosen by the path given: checkpoint, SavedModel, frozen graph,
TFLite or ONNX.

Every backend takes a batch of images already resized and padded to the model size (uint8
[B, h, w, 3], see serving.letterbox) and returns numpy detections in those pixels: boxes
[B, N, 4] yxyx, scores [B, N], classes [B, N] (label ids), num_detections [B]. TFLite and ONNX
carry the network alone; their outputs go through the same decode and NMS as the others.
"""

import functools
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientdet.errors import UserError
from efficientdet.export.frozen_graph import load_frozen_graph
from efficientdet.export.metadata import METADATA, exported_model
from efficientdet.export.serving import (
    INPUT_NAME,
    NETWORK_OUTPUT_NAMES,
    OUTPUT_NAMES,
    detections_from_network,
    detector_from_checkpoint,
)
from efficientdet.model.checkpoints import resolve_checkpoint
from efficientdet.model.description import describe_checkpoint

SAVED_MODEL_FILE = "saved_model.pb"
EXPORT_DEFAULT = "saved_model"


def load_backend(path, model_name=None, image_size=None, label_map=None):
    """The backend for `path`: a .tflite, .onnx or .pb file, a SavedModel folder, an export
    folder (its SavedModel), or a checkpoint (prefix or folder). `model_name`, `image_size`
    and `label_map` describe checkpoints that have no run's model.yaml."""
    path = Path(path)
    if path.is_dir() and (path / METADATA).is_file() and not (path / SAVED_MODEL_FILE).is_file():
        path = path / EXPORT_DEFAULT
    suffix = path.suffix.lower()
    if suffix in (".tflite", ".onnx", ".pb") and not path.is_file():
        raise UserError(f"{path}: no such file")
    if suffix == ".tflite":
        return TFLiteBackend(path)
    if suffix == ".onnx":
        return OnnxBackend(path)
    if suffix == ".pb":
        return FrozenGraphBackend(path)
    if (path / SAVED_MODEL_FILE).is_file():
        return SavedModelBackend(path)
    return CheckpointBackend(path, model_name, image_size, label_map)


def _num_threads():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _numpy(detections):
    return {key: np.asarray(value) for key, value in detections.items()}


class CheckpointBackend:
    kind = "checkpoint"

    def __init__(self, path, model_name=None, image_size=None, label_map=None):
        self.path = resolve_checkpoint(path)
        self.description = describe_checkpoint(self.path, model_name, image_size, label_map)
        self._detect = detector_from_checkpoint(self.path, self.description).detect

    def detect(self, images):
        return _numpy(self._detect(tf.constant(images)))


class SavedModelBackend:
    kind = "saved_model"

    def __init__(self, path):
        self.path = Path(path)
        self.description, _ = exported_model(self.path)
        try:
            self._serving = tf.saved_model.load(str(self.path)).signatures["serving_default"]
        except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
            raise UserError(f"{self.path}: cannot load this SavedModel ({error})") from None
        outputs = set(self._serving.structured_outputs)
        if outputs != set(OUTPUT_NAMES):
            raise UserError(
                f"{self.path}: serving_default returns {sorted(outputs)}, "
                f"not an EfficientDet export's {list(OUTPUT_NAMES)}"
            )

    def detect(self, images):
        return _numpy(self._serving(**{INPUT_NAME: tf.constant(images)}))


class FrozenGraphBackend:
    kind = "frozen_graph"

    def __init__(self, path):
        self.path = Path(path)
        self.description, _ = exported_model(self.path)
        names_path = self.path.with_suffix(".json")
        exported_model(names_path)
        self._run = load_frozen_graph(self.path, json.loads(names_path.read_text()))

    def detect(self, images):
        return _numpy(self._run(tf.constant(images)))


class _NetworkBackend:
    """A network-only model; decode and NMS follow in TensorFlow."""

    def __init__(self, path):
        self.path = Path(path)
        self.description, _ = exported_model(self.path)
        self._postprocess = _postprocess_function(
            self.description.config, self.description.num_classes
        )

    def _check_network(self, input_shape, output_shapes):
        height, width = self.description.config.image_size
        _check_shape(self.path, "input", input_shape, [None, height, width, 3])
        classes = self.description.num_classes
        _check_shape(self.path, NETWORK_OUTPUT_NAMES[0], output_shapes[0], [None, None, classes])
        _check_shape(self.path, NETWORK_OUTPUT_NAMES[1], output_shapes[1], [None, None, 4])

    def detect(self, images):
        outputs = self.run_network(images)
        return _numpy(self._postprocess(*(outputs[name] for name in NETWORK_OUTPUT_NAMES)))


@functools.cache
def _postprocess_function(config, num_classes):
    """Decode and NMS as one tf.function per model, traced once for any batch size."""
    return tf.function(
        lambda logits, deltas: detections_from_network([logits], [deltas], config),
        input_signature=[
            tf.TensorSpec([None, None, num_classes], tf.float32),
            tf.TensorSpec([None, None, 4], tf.float32),
        ],
    )


class TFLiteBackend(_NetworkBackend):
    kind = "tflite"

    def __init__(self, path):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(self.path), num_threads=_num_threads())
            self._runner = interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as error:
            raise UserError(f"{self.path}: cannot load this TFLite model ({error})") from None
        inputs = self._runner.get_input_details()
        outputs = self._runner.get_output_details()
        if set(inputs) != {INPUT_NAME} or set(outputs) != set(NETWORK_OUTPUT_NAMES):
            raise UserError(
                f"{self.path}: not an EfficientDet network export "
                f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})"
            )
        self._check_network(
            _dims(inputs[INPUT_NAME]["shape_signature"]),
            [_dims(outputs[name]["shape_signature"]) for name in NETWORK_OUTPUT_NAMES],
        )

    def run_network(self, images):
        return self._runner(**{INPUT_NAME: np.ascontiguousarray(images)})


class OnnxBackend(_NetworkBackend):
    kind = "onnx"

    def __init__(self, path):
        super().__init__(path)
        try:
            import onnxruntime
        except ImportError:
            raise UserError(
                f"{path}: running ONNX models needs onnxruntime: "
                "pip install 'efficientdet-workflow[onnx]'"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _num_threads()
        try:
            self._session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own, unexported, exception types
            raise UserError(f"{self.path}: cannot load this ONNX model ({error})") from None
        inputs = {item.name: item.shape for item in self._session.get_inputs()}
        outputs = {item.name: item.shape for item in self._session.get_outputs()}
        if set(inputs) != {INPUT_NAME} or set(outputs) != set(NETWORK_OUTPUT_NAMES):
            raise UserError(
                f"{self.path}: not an EfficientDet network export "
                f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})"
            )
        self._check_network(
            _dims(inputs[INPUT_NAME]), [_dims(outputs[name]) for name in NETWORK_OUTPUT_NAMES]
        )

    def run_network(self, images):
        values = self._session.run(list(NETWORK_OUTPUT_NAMES), {INPUT_NAME: images})
        return dict(zip(NETWORK_OUTPUT_NAMES, values))


def _dims(shape):
    """Unknown dimensions (-1, None, symbolic names) as None."""
    return [
        int(side) if isinstance(side, (int, np.integer)) and side >= 0 else None for side in shape
    ]


def _check_shape(path, name, shape, expected):
    compatible = len(shape) == len(expected) and all(
        want is None or got is None or got == want for got, want in zip(shape, expected)
    )
    if not compatible:
        raise UserError(
            f"{path}: {name} has shape {shape}, the model in its export folder's "
            f"{METADATA} expects {expected}: files of another model"
        )
