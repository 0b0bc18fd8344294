"""EfficientDet for TensorFlow 2 / Keras 3, and the stages of its training workflow.

The model API is imported lazily so that the data stages never pay TensorFlow's import.
"""

__version__ = "0.1.0"

_LAZY = {
    "build_model": "efficientdet.model.efficientdet",
    "load_checkpoint": "efficientdet.model.checkpoints",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'efficientdet' has no attribute {name!r}")
