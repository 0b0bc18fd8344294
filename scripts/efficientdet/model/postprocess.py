"""From raw head outputs to detections: decode, NMS, boxes in original-image pixels.

Candidates are the `max_nms_inputs` highest (anchor, class) scores of each image. Boxes are
clipped to the model image before NMS. Per-class NMS shifts each class's boxes to their own
region of the plane, so one NMS call never lets two classes suppress each other; class-agnostic
NMS lets any overlapping candidates compete (automl's "global" NMS). Gaussian soft-NMS follows
automl: a kept box scales an overlapping score by exp(-iou^2 / soft_nms_sigma).
"""

import tensorflow as tf

from efficientdet.model.anchors import decode_boxes, head_levels

NMS_METHODS = ("hard", "gaussian")


def top_candidates(levels, k):
    """tf.math.top_k of the levels' logits ([B, A_l, C] each) concatenated along anchors and
    flattened to [B, A * C], ties included, only faster.

    The k best (anchor, class) entries all lie in the k anchors of highest maximum (ties: lower
    index first): another anchor's entries rank behind those k maxima. So top_k only looks at
    those anchors' rows, k * C entries instead of A * C, taken in anchor order so that ties
    resolve by index as in a plain top_k; a constant output (all ties) costs no more. With
    fewer anchors than k there is nothing to leave out.
    """
    num_anchors = sum(level.shape[1] or 0 for level in levels)
    if any(level.shape[1] is None for level in levels) or num_anchors < k:
        logits = tf.concat(levels, axis=1)
        return tf.math.top_k(tf.reshape(logits, [tf.shape(logits)[0], -1]), k=k)
    maxima = tf.concat([tf.reduce_max(level, axis=-1) for level in levels], axis=1)
    anchors = tf.sort(tf.math.top_k(maxima, k=k).indices, axis=-1)
    num_classes = levels[0].shape[-1]
    rows = tf.reshape(_rows(levels, anchors), [-1, k * num_classes])
    values, positions = tf.math.top_k(rows, k=k)
    anchor_indices = tf.gather(anchors, positions // num_classes, batch_dims=1)
    return values, anchor_indices * num_classes + positions % num_classes


def _rows(levels, anchors):
    """The rows [B, k, C] of `anchors` (indices into the levels' concatenation), gathered from
    each level: concatenating the levels first would copy every logit (18 MB for d0 with 90
    classes), which costs more than the whole selection."""
    if len(levels) == 1:
        return tf.gather(levels[0], anchors, batch_dims=1)
    slots = tf.reshape(tf.range(tf.size(anchors)), tf.shape(anchors))
    images = tf.range(tf.shape(anchors)[0])[:, tf.newaxis]
    level_slots, level_rows, start = [], [], 0
    for level in levels:
        size = level.shape[1]
        in_level = (anchors >= start) & (anchors < start + size)
        level_slots.append(tf.boolean_mask(slots, in_level))
        flat_rows = tf.reshape(level, [-1, level.shape[-1]])
        level_rows.append(
            tf.gather(flat_rows, tf.boolean_mask(images * size + anchors - start, in_level))
        )
        start += size
    rows = tf.dynamic_stitch(level_slots, level_rows)
    return tf.reshape(rows, [-1, anchors.shape[1], levels[0].shape[-1]])


def postprocess(
    cls_outputs,
    box_outputs,
    anchors,
    image_size,
    image_scales=None,
    image_sizes=None,
    *,
    method="hard",
    per_class=True,
    iou_threshold=0.5,
    score_threshold=0.0,
    soft_nms_sigma=0.5,
    max_detections=100,
    max_nms_inputs=5000,
):
    """Detections of a batch as a dict of float32/int32 tensors, padded to `max_detections`.

    cls_outputs / box_outputs: head outputs (lists over levels, layout in anchors.py);
    anchors [N, 4] for `image_size` (height, width); image_scales [B] (original pixels per
    model pixel, from resize_and_pad) or None; image_sizes [B, 2] (original height, width) or
    None: scaled boxes reaching into the padding end at the image's border. Returns boxes
    [B, D, 4] yxyx, scores [B, D], classes [B, D] (label ids, 0 in padding), num_detections [B].
    """
    if method not in NMS_METHODS:
        raise ValueError(f"NMS method must be one of {NMS_METHODS}, got {method!r}")
    levels, deltas = head_levels(cls_outputs, box_outputs)
    num_classes = levels[0].shape[-1]

    num_candidates = min(max_nms_inputs, anchors.shape[0] * num_classes)
    top_logits, top_indices = top_candidates(levels, num_candidates)
    anchor_indices = top_indices // num_classes
    channels = top_indices % num_classes
    candidate_deltas = tf.gather(deltas, anchor_indices, batch_dims=1)
    boxes = decode_boxes(candidate_deltas, tf.gather(anchors, anchor_indices))
    height, width = (float(side) for side in image_size)
    boxes = tf.clip_by_value(boxes, 0.0, [height, width, height, width])
    scores = tf.sigmoid(top_logits)

    def nms_one_image(inputs):
        image_boxes, image_scores, image_channels = inputs
        nms_boxes = image_boxes
        if per_class:
            class_offsets = tf.cast(image_channels, tf.float32) * (max(height, width) + 1.0)
            nms_boxes = image_boxes + class_offsets[:, tf.newaxis]
        selected, selected_scores = tf.image.non_max_suppression_with_scores(
            nms_boxes,
            image_scores,
            max_output_size=max_detections,
            iou_threshold=1.0 if method == "gaussian" else iou_threshold,
            score_threshold=score_threshold,
            soft_nms_sigma=soft_nms_sigma / 2.0 if method == "gaussian" else 0.0,
        )
        count = tf.shape(selected)[0]
        padding = [[0, max_detections - count]]
        valid = tf.pad(tf.ones([count], tf.bool), padding)
        kept_boxes = tf.gather(image_boxes, tf.pad(selected, padding))
        kept_boxes = tf.where(valid[:, tf.newaxis], kept_boxes, 0.0)
        kept_classes = tf.pad(tf.gather(image_channels, selected) + 1, padding)
        return kept_boxes, tf.pad(selected_scores, padding), kept_classes, count

    boxes, scores, classes, num_detections = tf.map_fn(
        nms_one_image,
        (boxes, scores, channels),
        fn_output_signature=(
            tf.TensorSpec([max_detections, 4], tf.float32),
            tf.TensorSpec([max_detections], tf.float32),
            tf.TensorSpec([max_detections], tf.int32),
            tf.TensorSpec([], tf.int32),
        ),
    )
    if image_scales is not None:
        boxes = boxes * tf.cast(tf.reshape(image_scales, [-1, 1, 1]), tf.float32)
    if image_sizes is not None:
        heights, widths = tf.unstack(tf.cast(image_sizes, tf.float32), axis=-1)
        limits = tf.stack([heights, widths, heights, widths], axis=-1)[:, tf.newaxis, :]
        boxes = tf.minimum(boxes, limits)
    return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": num_detections}
