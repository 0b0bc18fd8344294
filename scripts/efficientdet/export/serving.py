"""The functions an export serves: the whole detector on images, and the bare network.

`Detector.detect` is what the SavedModel's `serving_default` and the frozen graph run: uint8
images of any size and batch in, detections in input pixels out. `Detector.network` is the
network alone at the model's input size, as TFLite and ONNX carry it: their interpreters run it
and `detections_from_network` (decode and NMS, the same code) finishes the job outside, so that
no TensorFlow-only (Flex) op is needed and soft-NMS keeps working.
"""

import tensorflow as tf

from efficientdet import build_model, load_checkpoint
from efficientdet.model.anchors import generate_anchors, merge_head_outputs
from efficientdet.model.postprocess import postprocess
from efficientdet.model.preprocess import resize_and_pad

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "classes", "num_detections")
NETWORK_OUTPUT_NAMES = ("class_logits", "box_deltas")


def nms_options(config):
    """postprocess() keyword arguments from a model config's NMS settings."""
    return dict(
        method=config.nms_method,
        per_class=not config.nms_class_agnostic,
        iou_threshold=config.nms_iou_threshold,
        score_threshold=config.nms_score_threshold,
        soft_nms_sigma=config.nms_sigma,
        max_detections=config.max_detections,
    )


def model_anchors(config):
    return generate_anchors(
        config.image_size,
        config.min_level,
        config.max_level,
        config.num_scales,
        config.aspect_ratios,
        config.anchor_scale,
    )


def detections_from_network(
    class_outputs, box_outputs, config, image_scales=None, image_sizes=None
):
    """Decode and NMS of the network's outputs (lists over levels; `Detector.network`'s merged
    tensors are one level): a dict of OUTPUT_NAMES tensors."""
    return postprocess(
        class_outputs,
        box_outputs,
        model_anchors(config),
        config.image_size,
        image_scales,
        image_sizes,
        **nms_options(config),
    )


class Detector:
    """A keras EfficientDet with its config, as the functions that exports serve."""

    def __init__(self, model, config, num_classes):
        self.model = model
        self.config = config
        self.num_classes = num_classes
        height, width = config.image_size
        self.detect = tf.function(
            self._detect,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)],
        )
        self.network = tf.function(
            self._network,
            input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)],
        )

    def _network(self, images):
        class_logits, box_deltas = merge_head_outputs(
            *self.model(tf.cast(images, tf.float32), training=False)
        )
        return {"class_logits": class_logits, "box_deltas": box_deltas}

    def _detect(self, images):
        with tf.name_scope("preprocess"):
            resized, scales = resize_and_pad(images, self.config.image_size)
            image_sizes = tf.tile(tf.shape(images)[tf.newaxis, 1:3], [tf.shape(images)[0], 1])
        class_outputs, box_outputs = self.model(resized, training=False)
        with tf.name_scope("postprocess"):
            detections = detections_from_network(
                class_outputs, box_outputs, self.config, scales, image_sizes
            )
        # Named identities give the frozen graph fixed output node names.
        return {name: tf.identity(detections[name], name=name) for name in OUTPUT_NAMES}


def detector_from_checkpoint(checkpoint, description):
    """A Detector with the weights of `checkpoint` (its EMA weights, for a training checkpoint)."""
    config = description.config
    model = build_model(config.name, description.num_classes, config.image_size)
    load_checkpoint(model, checkpoint)
    return Detector(model, config, description.num_classes)


def letterbox(image, image_size):
    """uint8 image [H, W, 3] -> (uint8 [h, w, 3] resized and padded to `image_size`, scale).

    Fed to `detect` it passes through unchanged (resizing to its own size is exact), so every
    backend sees the same pixels; original coordinates = returned coordinates * scale.
    """
    resized, scale = resize_and_pad(image, image_size)
    return tf.saturate_cast(tf.round(resized), tf.uint8).numpy(), float(scale)
