"""`efficientdet evaluate`: COCO evaluation of one checkpoint on the validation TFRecords.

Accepts the original tool's flags (efficientdet.flags), e.g.
`efficientdet evaluate --model_dir=models/run --val_file_pattern='results/ds/tfrecords/val-*'`;
those that only concern training are accepted and ignored, so one params file serves both.
The checkpoint's EMA weights detect objects in every validation image (or the first
--eval_samples); pycocotools scores them against the COCO ground truth (default: val_coco.json
beside the tfrecords folder). Writes a JSON (the twelve COCO metrics, per-class COCO AP and AP50,
per-class VOC AP50 with all-point interpolation and with VOC2007's 11 points) and a PNG of the
precision-recall curves.
"""

import collections
import dataclasses
import json
import logging
import time
from pathlib import Path

import tensorflow as tf

from efficientdet import automl_hparams, build_model, flags, load_checkpoint
from efficientdet.atomic import atomic_output
from efficientdet.config import EfficientDetConfig, get_config
from efficientdet.errors import UserError
from efficientdet.evaluate.coco import category_names, evaluate_detections, load_ground_truth
from efficientdet.evaluate.plots import plot_pr_curves
from efficientdet.evaluate.voc import voc_ap_per_class
from efficientdet.export.serving import model_anchors, nms_options
from efficientdet.layout import EVALUATION_NAME, DatasetFiles
from efficientdet.model.checkpoints import checkpoint_step, resolve_checkpoint
from efficientdet.model.description import run_description
from efficientdet.model.postprocess import postprocess
from efficientdet.train.input import decoded_examples, prepare_example, shard_paths

log = logging.getLogger(__name__)

AUTOML_CLASS_BIAS = "class_net/class-predict/bias"
VOC_AP_METHODS = {
    "VOC_AP50": "all-point interpolation (VOC2010+), IoU 0.5, difficult objects ignored",
    "VOC07_AP50": "11-point interpolation (VOC2007), IoU 0.5, difficult objects ignored",
}
EVAL_FLAGS = (
    flags.Flag(
        "checkpoint",
        str,
        None,
        "checkpoint prefix (e.g. models/run/checkpoints/ckpt-1200) or a folder, whose "
        "latest checkpoint is used (default: the latest in --model_dir)",
    ),
    flags.Flag(
        "val_json_file",
        str,
        None,
        "COCO ground truth of the validation split (default: val_coco.json beside the "
        "tfrecords folder)",
    ),
    flags.Flag(
        "image_size",
        str,
        None,
        "model input size, an int or WxH (default: the run's, else the variant's)",
    ),
    flags.Flag("output", str, None, "JSON to write (default: {model_dir}/eval/ckpt-{step}.json)"),
    flags.Flag("plot", str, None, "PR-curve PNG to write (default: the JSON's name, .png)"),
    flags.Flag("tensorboard_dir", str, None, "also log the metrics to TensorBoard there"),
)


@dataclasses.dataclass(frozen=True)
class EvaluatedModel:
    checkpoint: str
    step: int
    config: EfficientDetConfig
    num_classes: int


def add_arguments(parser):
    flags.add_flags(parser, flags.ORIGINAL_FLAGS + EVAL_FLAGS)


def run(options):
    started = time.time()
    val_files = validation_files(options.val_file_pattern)
    ground_truth_path = Path(
        options.val_json_file or DatasetFiles.of_records(options.val_file_pattern).val_coco
    )
    ground_truth = load_ground_truth(ground_truth_path)
    target = describe_model(options, category_names(ground_truth))
    output = Path(
        options.output
        or Path(options.model_dir or ".") / "eval" / EVALUATION_NAME.format(step=target.step)
    )
    log.info(
        "evaluating %s (%s at %s) on %s",
        target.checkpoint,
        target.config.name,
        "x".join(map(str, target.config.image_size)),
        options.val_file_pattern,
    )

    model = build_model(target.config.name, target.num_classes, target.config.image_size)
    load_checkpoint(model, target.checkpoint)
    detections, image_ids = detect(
        model, target.config, val_files, options.batch_size, options.eval_samples
    )
    log.info("%d detections on %d images", len(detections), len(image_ids))
    try:
        report = evaluation_report(ground_truth, detections, image_ids)
    except UserError as error:
        raise UserError(f"{ground_truth_path}: {error}") from None
    log.info("COCO metrics:\n%s", report["evaluation"].summary_text)
    result = {
        "checkpoint": target.checkpoint,
        "step": target.step,
        "model_name": target.config.name,
        "image_size": list(target.config.image_size),
        "ground_truth": str(ground_truth_path),
        "num_images": len(image_ids),
        "max_samples": options.eval_samples,
        "num_detections": len(detections),
        "metrics": report["metrics"],
        "per_class": report["per_class"],
        "voc_ap_methods": VOC_AP_METHODS,
        "seconds": round(time.time() - started, 1),
    }
    write_outputs(
        result, report["evaluation"], output, Path(options.plot or output.with_suffix(".png"))
    )
    if options.tensorboard_dir:
        log_to_tensorboard(options.tensorboard_dir, result["metrics"], target.step)


def validation_files(pattern):
    if not pattern:
        raise UserError("--val_file_pattern is required (TFRecords of the validation split)")
    files = shard_paths(pattern)
    try:
        empty = not any(True for _ in tf.data.TFRecordDataset(files).take(1))
    except tf.errors.OpError as error:
        raise UserError(f"{files[0]}...: cannot read the TFRecords ({error.message})") from None
    if empty:
        raise UserError(f"{pattern}: the validation split is empty")
    return files


def write_outputs(result, evaluation, output, plot):
    """The PR-curve plot, then the JSON, each written whole or not at all."""
    metrics = result["metrics"]
    plot_pr_curves(
        evaluation,
        plot,
        title=f"{result['model_name']}, step {result['step']}: "
        f"AP {_text(metrics['AP'])}, AP50 {_text(metrics['AP50'])}",
    )
    with atomic_output(output) as temporary:
        temporary.write_text(json.dumps(result, indent=2) + "\n")
    log.info("AP %s, AP50 %s -> %s", _text(metrics["AP"]), _text(metrics["AP50"]), output)


def describe_model(options, dataset_label_map):
    """The checkpoint, its step, the model config and label map, checked against the dataset.

    A checkpoint of a training run is described by the run's model.yaml; others (official
    checkpoints) by the flags and the dataset's label map.
    """
    if not options.checkpoint and not options.model_dir:
        raise UserError("give --checkpoint or --model_dir (the checkpoint to evaluate)")
    checkpoint = resolve_checkpoint(options.checkpoint or options.model_dir)
    recorded = run_description(checkpoint)
    model_name = recorded.config.name if recorded else options.model_name
    overrides = model_overrides(flags.parse_hparams(options.hparams), model_name)
    if options.image_size:
        overrides["image_size"] = options.image_size
    if recorded is not None:
        check_label_maps(recorded.label_map, dataset_label_map, checkpoint)
        values = {**recorded.config.as_dict(), **overrides}
        config = get_config(values.pop("name"), **values)
        num_classes = recorded.num_classes
    else:
        config = get_config(options.model_name, **overrides)
        num_classes = max(dataset_label_map)
        check_class_count(checkpoint, config.num_anchors, num_classes)
    return EvaluatedModel(checkpoint, checkpoint_step(checkpoint), config, num_classes)


def model_overrides(hparams, model_name):
    """The model settings among hparams (automl's names too); training-only ones are left."""
    known = {field.name for field in dataclasses.fields(EfficientDetConfig)}
    translated = automl_hparams.translate(hparams, model_name)
    return {key: value for key, value in translated.items() if key in known}


def check_label_maps(model_label_map, dataset_label_map, source):
    """Refuses a model trained on other classes (or the same classes under other ids)."""
    if model_label_map == dataset_label_map:
        return
    differences = [
        f"id {label_id}: model {model_label_map.get(label_id)!r}, "
        f"dataset {dataset_label_map.get(label_id)!r}"
        for label_id in sorted(set(model_label_map) | set(dataset_label_map))
        if model_label_map.get(label_id) != dataset_label_map.get(label_id)
    ]
    raise UserError(
        f"{source}: label map mismatch between the checkpoint's model and the dataset's "
        f"ground truth ({'; '.join(differences[:5])}"
        f"{'; ...' if len(differences) > 5 else ''})"
    )


def check_class_count(checkpoint, num_anchors, num_classes):
    """An official checkpoint's class head must predict the dataset's classes."""
    shapes = dict(tf.train.list_variables(checkpoint))
    bias = shapes.get(AUTOML_CLASS_BIAS)
    if bias and bias[0] != num_anchors * num_classes:
        raise UserError(
            f"{checkpoint}: label map mismatch: the checkpoint predicts "
            f"{bias[0] // num_anchors} classes, the dataset's label ids go up to {num_classes}"
        )


def detect(model, config, val_files, batch_size, max_samples=None):
    """COCO result dicts of the model's detections and the ids of the images seen."""
    anchors = model_anchors(config)

    # One trace for every batch size, the last partial batch included.
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *config.image_size, 3], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, 2], tf.int32),
        ]
    )
    def detect_batch(images, scales, image_sizes):
        class_outputs, box_outputs = model(images, training=False)
        return postprocess(
            class_outputs,
            box_outputs,
            anchors,
            config.image_size,
            scales,
            image_sizes,
            **nms_options(config),
        )

    examples = decoded_examples(val_files, training=False).map(
        lambda example: prepare_example(example, config, training=False),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if max_samples:
        examples = examples.take(max_samples)
    batches = (
        examples.map(
            lambda example: (
                example["image"],
                example["scale"],
                example["image_size"],
                example["source_id"],
            )
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

    detections, image_ids = [], []
    try:
        for images, scales, image_sizes, source_ids in batches:
            found = detect_batch(images, scales, tf.cast(image_sizes, tf.int32))
            found = {key: value.numpy() for key, value in found.items()}
            for index, image_id in enumerate(source_ids.numpy().tolist()):
                image_ids.append(image_id)
                detections += _coco_results(image_id, found, index)
    except tf.errors.OpError as error:
        raise UserError(
            f"{val_files[0]}...: cannot read the validation TFRecords ({error.message})"
        ) from None
    duplicated = sorted(i for i, count in collections.Counter(image_ids).items() if count > 1)
    if duplicated or -1 in image_ids:
        raise UserError(
            f"{val_files[0]}...: image/source_id missing or not unique ({(duplicated or [-1])[:5]})"
        )
    return detections, image_ids


def _coco_results(image_id, found, index):
    results = []
    for (ymin, xmin, ymax, xmax), score, label_id in zip(
        found["boxes"][index][: found["num_detections"][index]].tolist(),
        found["scores"][index].tolist(),
        found["classes"][index].tolist(),
    ):
        results.append(
            {
                "image_id": image_id,
                "category_id": label_id,
                "bbox": [xmin, ymin, xmax - xmin, ymax - ymin],
                "score": score,
            }
        )
    return results


def evaluation_report(ground_truth, detections, image_ids):
    """COCO evaluation plus both VOC AP50s, as the JSON's `metrics` and `per_class`."""
    evaluation = evaluate_detections(ground_truth, detections, image_ids)
    annotations = ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=image_ids))
    category_ids = [row["id"] for row in evaluation.per_class]
    per_class = [dict(row) for row in evaluation.per_class]
    metrics = dict(evaluation.metrics)
    for name in VOC_AP_METHODS:
        voc = voc_ap_per_class(
            annotations, detections, category_ids, use_11_point=name == "VOC07_AP50"
        )
        for row in per_class:
            row[name] = voc[row["id"]]
        defined = [value for value in voc.values() if value is not None]
        metrics[name] = sum(defined) / len(defined) if defined else None
    return {"evaluation": evaluation, "metrics": metrics, "per_class": per_class}


def log_to_tensorboard(folder, metrics, step):
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for name, value in metrics.items():
            if value is not None:
                tf.summary.scalar(f"coco/{name}", value, step=step)
    writer.close()


def _text(value):
    return "n/a" if value is None else f"{value:.4f}"
