"""Loading weights into a model made by build_model.

Three sources:
- official google/automl checkpoints (name-based TF1 checkpoints such as the released
  efficientdet-d0.tar.gz), read with tf.train.load_checkpoint and mapped onto the model by
  variable name: the BiFPN and heads carry automl's names already, the backbone's keras layer
  names are translated (block2a_expand_conv -> blocks_1/conv2d ...);
- this project's own training checkpoints (tf.train.Checkpoint with attribute `model`, and
  `ema_model` for the moving average of the weights, which is then what loads);
- Keras' ImageNet EfficientNet weights, for the backbone alone.
"""

import logging
import os
import re
from pathlib import Path

import keras
import tensorflow as tf

from efficientdet.errors import UserError
from efficientdet.layout import RunFiles
from efficientdet.model.backbone import KERAS_EFFICIENTNETS, keras_efficientnet

log = logging.getLogger(__name__)

EMA_SUFFIX = "/ExponentialMovingAverage"
# Head layers whose shape depends on num_classes may differ from the checkpoint's.
HEAD_SCOPES = ("class_net/", "box_net/")
STEM_SCOPES = {"stem_conv": "stem/conv2d", "stem_bn": "stem/tpu_batch_normalization"}
# automl names a block's layers by creation order; the expansion layers exist when
# expand_ratio != 1 and shift the numbering.
BLOCK_SCOPES_EXPANDED = {
    "expand_conv": "conv2d",
    "expand_bn": "tpu_batch_normalization",
    "dwconv": "depthwise_conv2d",
    "bn": "tpu_batch_normalization_1",
    "se_reduce": "se/conv2d",
    "se_expand": "se/conv2d_1",
    "project_conv": "conv2d_1",
    "project_bn": "tpu_batch_normalization_2",
}
BLOCK_SCOPES_UNEXPANDED = {
    "dwconv": "depthwise_conv2d",
    "bn": "tpu_batch_normalization",
    "se_reduce": "se/conv2d",
    "se_expand": "se/conv2d_1",
    "project_conv": "conv2d",
    "project_bn": "tpu_batch_normalization_1",
}


def load_checkpoint(model, path):
    """Loads `path` into `model` (from build_model), choosing the loader by what `path` is.

    - "imagenet" or a .h5/.keras file: Keras EfficientNet ImageNet weights, backbone only.
    - a checkpoint directory (with a `checkpoint` file) or prefix: this project's own
      checkpoint when its variables hang off `model/`, otherwise an official automl one.
    """
    path = os.fspath(path)
    if path == "imagenet" or path.endswith((".h5", ".keras")):
        load_keras_backbone_weights(model, path)
        return
    prefix = resolve_checkpoint(path)
    try:
        shapes = dict(tf.train.list_variables(prefix))
        if any(name.startswith("model/") for name in shapes):
            load_project_checkpoint(model, prefix)
        else:
            load_automl_checkpoint(model, prefix, shapes)
    except (tf.errors.OpError, IndexError) as error:
        # TensorFlow's checkpoint reader raises IndexError on a truncated data file.
        raise UserError(f"{prefix}: cannot read this checkpoint ({error})") from None


def checkpoint_step(checkpoint):
    """The global step in a name like ckpt-1200 (0 for other names)."""
    match = re.search(r"-(\d+)$", os.path.basename(os.fspath(checkpoint)))
    return int(match.group(1)) if match else 0


def checkpoint_folder(path):
    """The folder of checkpoints `path` names: models/{run}/checkpoints for a run's folder."""
    checkpoints = RunFiles(Path(path)).checkpoints
    return checkpoints if checkpoints.is_dir() else Path(path)


def resolve_checkpoint(path):
    """The checkpoint prefix `path` names: a prefix (models/{run}/checkpoints/ckpt-1200), or the
    latest checkpoint of a folder (a run's folder, its checkpoints folder, an official release)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(checkpoint_folder(path))
        if prefix is None:
            raise UserError(f"{path}: folder holds no TensorFlow checkpoint")
        return prefix
    if not os.path.exists(path + ".index"):
        raise UserError(f"{path}: no such checkpoint ({path}.index does not exist)")
    return path


def load_project_checkpoint(model, prefix):
    """A checkpoint written by this project: tf.train.Checkpoint(model=model, ...). Training
    checkpoints also hold `ema_model`, the moving average of the weights: that is loaded.

    A checkpoint of another class count loads into a twin model of its own count first; every
    weight but the class predictor's then moves over, and the skipped ones are logged.
    """
    shapes = dict(tf.train.list_variables(prefix))
    root = "ema_model" if any(name.startswith("ema_model/") for name in shapes) else "model"
    class_head = model.get_layer("class_net")
    anchors = model.get_layer("box_net").predict.filters // 4
    index = model.operations.index(class_head)
    bias = shapes.get(f"{root}/_operations/{index}/predict/bias/.ATTRIBUTES/VARIABLE_VALUE")
    if not bias or bias[0] == class_head.predict.filters:
        _restore(model, root, prefix)
        return
    source = _build_twin(model, bias[0] // anchors, prefix)
    _restore(source, root, prefix)
    skipped = []
    for target, weight in zip(model.weights, source.weights):
        if target.shape == weight.shape:
            target.assign(weight)
        else:
            skipped.append(target.path)
    log.warning(
        "%s: predicts %d classes, model %s %d: kept the initial values of %s",
        prefix,
        bias[0] // anchors,
        model.name,
        class_head.predict.filters // anchors,
        skipped,
    )


def _build_twin(model, num_classes, prefix):
    from efficientdet.model.efficientdet import build_model

    try:
        return build_model(model.name, num_classes, tuple(model.input_shape[1:3]))
    except UserError as error:
        raise UserError(f"{prefix}: does not fit model {model.name}: {error}") from None


def _restore(model, root, prefix):
    try:
        status = tf.train.Checkpoint(**{root: model}).restore(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise UserError(f"{prefix}: does not fit model {model.name}: {error}") from error


def load_automl_checkpoint(model, prefix, shapes):
    """An official automl checkpoint: the /ExponentialMovingAverage copy of each weight where
    present; optimizer slots and global_step are never read. Head weights of another shape
    (another num_classes) keep their initial values; any other missing or misshapen weight
    means the checkpoint is not this variant, and nothing is loaded."""
    assignments = []
    skipped = []
    for name, variable in automl_variable_names(model).items():
        key = name + EMA_SUFFIX if name + EMA_SUFFIX in shapes else name
        if key not in shapes:
            raise UserError(
                f"{prefix}: not an EfficientDet checkpoint of {model.name}: "
                f"it has no variable {name}{describe_backbone(shapes)}"
            )
        expected, found = tuple(variable.shape), tuple(shapes[key])
        if found != expected:
            if name.startswith(HEAD_SCOPES):
                skipped.append(f"{name} {found} (model: {expected})")
                continue
            raise UserError(
                f"{prefix}: not an EfficientDet checkpoint of {model.name}: "
                f"{name} has shape {found}, the model expects {expected}"
            )
        assignments.append((variable, key))

    reader = tf.train.load_checkpoint(prefix)
    for variable, key in assignments:
        variable.assign(reader.get_tensor(key))
    log.info("%s: loaded %d weights into %s", prefix, len(assignments), model.name)
    if skipped:
        log.warning(
            "%s: skipped %d head weights of another shape (other num_classes): %s",
            prefix,
            len(skipped),
            "; ".join(skipped),
        )


def describe_backbone(shapes):
    scopes = sorted({name.split("/")[0] for name in shapes if name.startswith("efficientnet-")})
    return f" (its backbone is {', '.join(scopes)})" if scopes else ""


def automl_variable_names(model):
    """Every weight of `model` under its name in an automl checkpoint."""
    names = {}
    for layer in model.layers:
        if layer is backbone_of(model):
            names.update(backbone_variable_names(layer))
        else:
            names.update({variable.path: variable for variable in layer.weights})
    return names


def backbone_of(model):
    backbones = [layer for layer in model.layers if layer.name.startswith("efficientnet-")]
    if len(backbones) != 1:
        raise UserError(f"model {model.name}: not an EfficientDet built by build_model")
    return backbones[0]


def backbone_variable_names(backbone):
    """Backbone weights under automl's names: stem/..., blocks_{i}/... in block order."""
    layer_names = {layer.name for layer in backbone.layers}
    block_indices = {}
    names = {}
    for layer in backbone.layers:
        if not layer.weights:
            continue
        if layer.name in STEM_SCOPES:
            scope = STEM_SCOPES[layer.name]
        else:
            block, part = re.fullmatch(r"(block\d+[a-z]+)_(\w+)", layer.name).groups()
            block_index = block_indices.setdefault(block, len(block_indices))
            expanded = f"{block}_expand_conv" in layer_names
            parts = BLOCK_SCOPES_EXPANDED if expanded else BLOCK_SCOPES_UNEXPANDED
            scope = f"blocks_{block_index}/{parts[part]}"
        for variable in layer.weights:
            is_depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            weight = "depthwise_kernel" if is_depthwise else variable.name
            names[f"{backbone.name}/{scope}/{weight}"] = variable
    return names


def load_keras_backbone_weights(model, weights):
    """Copies Keras' EfficientNet ImageNet weights ("imagenet": Keras' own download; or a
    .h5/.keras file of keras.applications.EfficientNetBx, with or without top) into the
    backbone of `model`, by layer name. The BiFPN and heads keep their values."""
    backbone = backbone_of(model)
    if backbone.name not in KERAS_EFFICIENTNETS:
        raise UserError(
            f"{weights}: Keras has no ImageNet weights for {backbone.name}; "
            "start from an official EfficientDet-lite checkpoint instead"
        )
    if weights != "imagenet" and not os.path.isfile(weights):
        raise UserError(f"{weights}: no such file")
    classifier = keras_classifier_with_weights(backbone.name, backbone.input_shape[1:3], weights)
    for layer in backbone.layers:
        if layer.weights:
            layer.set_weights(classifier.get_layer(layer.name).get_weights())
    log.info("%s: loaded Keras ImageNet weights into the %s backbone", weights, backbone.name)


def keras_classifier_with_weights(backbone_name, image_size, weights):
    errors = []
    for include_top in (False, True):
        try:
            return keras_efficientnet(backbone_name, image_size, weights, include_top)
        except Exception as error:  # keras raises many kinds on a mismatched or absent file
            errors.append(f"{type(error).__name__}: {error}")
    raise UserError(
        f"{weights}: could not load as Keras {backbone_name} weights: " + " / ".join(errors)
    )
