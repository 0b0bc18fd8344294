"""The Keras model that `fit` trains: the detector, its loss, L2 decay and a weight average."""

import keras
import tensorflow as tf

from efficientdet.keras_internals import PrebuiltModel, check_keras_internals, multi_worker_logs
from efficientdet.model.anchors import generate_anchors
from efficientdet.model.depthwise import switch_depthwise_gradients
from efficientdet.model.swish import fuse_swish_gradients
from efficientdet.train import distribute, optimization
from efficientdet.train.losses import detection_loss

LOSS_NAMES = ("loss", "class_loss", "box_loss", "l2_loss")

check_keras_internals()


class DetectionTrainer(PrebuiltModel):
    """Trains `detector` on batches (images, targets) from the input pipeline.

    targets: {"cls_targets" [B, N], "box_targets" [B, N, 4], "num_positives" [B]}. Each step
    folds the new weights into `average_detector` (a twin of `detector`); validation runs the
    averaged weights, which are the ones evaluated and exported.
    """

    def __init__(self, detector, average_detector, config, params, **kwargs):
        super().__init__(**kwargs)
        fuse_swish_gradients(detector)
        switch_depthwise_gradients(detector)
        self.detector = detector
        self.average_detector = average_detector
        self.average = optimization.WeightAverage(
            detector, average_detector, params["moving_average_decay"]
        )
        self.weight_decay = float(params["weight_decay"])
        # Indices into `weights`, valid for both twins: the averaged twin has no trainable list.
        self.decayed_indices = [
            index
            for index, variable in enumerate(detector.weights)
            if variable.trainable and optimization.is_decayed(variable)
        ]
        self.loss_options = dict(
            alpha=config.alpha,
            gamma=config.gamma,
            delta=config.delta,
            box_loss_weight=config.box_loss_weight,
            label_smoothing=config.label_smoothing,
            iou_loss_type=config.iou_loss_type,
            iou_loss_weight=config.iou_loss_weight,
        )
        if config.iou_loss_type:
            self.loss_options["anchors"] = generate_anchors(
                config.image_size,
                config.min_level,
                config.max_level,
                config.num_scales,
                config.aspect_ratios,
                config.anchor_scale,
            )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        return self.detector(images, training=training)

    def _detection_losses(self, detector, images, targets, training):
        class_outputs, box_outputs = detector(images, training=training)
        total, class_loss, box_loss = detection_loss(
            class_outputs,
            box_outputs,
            targets["cls_targets"],
            targets["box_targets"],
            targets["num_positives"],
            **self.loss_options,
        )
        weights = detector.weights
        kernels = [weights[index] for index in self.decayed_indices]
        l2_loss = optimization.l2_loss(kernels, self.weight_decay)
        return dict(loss=total + l2_loss, class_loss=class_loss, box_loss=box_loss, l2_loss=l2_loss)

    def _record(self, losses, **extra):
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        logs = {name: tracker.result() for name, tracker in self.trackers.items()} | extra
        if distribute.is_multi_worker(tf.distribute.get_strategy()):
            logs = multi_worker_logs(logs)
        return logs

    def train_step(self, data):
        images, targets = data
        variables = self.detector.trainable_variables
        with tf.GradientTape() as tape:
            losses = self._detection_losses(self.detector, images, targets, training=True)
            # Gradients are summed over replicas: each contributes its share of the mean.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(losses["loss"] / replicas)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.average.update(self.optimizer.iterations)
        return self._record(
            losses, learning_rate=self.optimizer.learning_rate, step=self.optimizer.iterations
        )

    def test_step(self, data):
        images, targets = data
        losses = self._detection_losses(self.average_detector, images, targets, training=False)
        return self._record(losses)
