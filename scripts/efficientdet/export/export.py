"""`efficientdet export`: a checkpoint's EMA weights as SavedModel, frozen graph, TFLite and ONNX.

Writes into --output_dir (models/{run}/export/ in the workflow), all or nothing:

    saved_model/          serving_default: images uint8 [B, H, W, 3], any size and batch ->
                          boxes [B, N, 4] (ymin, xmin, ymax, xmax in input pixels), scores [B, N],
                          classes [B, N] (label ids), num_detections [B]; label map as an asset;
                          weights as constants (see efficientdet.export.frozen_graph)
    frozen_model.pb       the same graph as one GraphDef
    frozen_model.json     its input and output tensor names
    model_fp32.tflite     the network alone (see efficientdet.export.serving):
                          images uint8 [B, h, w, 3]
    model_fp16.tflite       at the model size, resized and padded -> class_logits [B, A, C],
    model_int8.tflite       box_deltas [B, A, 4]; decode and NMS run outside (no Flex ops,
    model.onnx              soft-NMS kept); int8 is calibrated on training images
    label_map.yaml
    metadata.json         model, image size, label map, run, checkpoint step, metrics, versions,
                          NMS settings, and the sha256 of every file above
"""

import importlib.util
import json
import logging
import platform
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from efficientdet import __version__
from efficientdet.atomic import atomic_output
from efficientdet.data.label_map import write_label_map
from efficientdet.errors import UserError
from efficientdet.export.frozen_graph import freeze, save_frozen, write_frozen_graph
from efficientdet.export.metadata import write_metadata
from efficientdet.export.serving import (
    INPUT_NAME,
    NETWORK_OUTPUT_NAMES,
    OUTPUT_NAMES,
    detector_from_checkpoint,
    letterbox,
    nms_options,
)
from efficientdet.export.tflite import QUANTIZATIONS, convert_to_tflite
from efficientdet.layout import (
    CHECKPOINT_NAME,
    EVALUATION_NAME,
    RunFiles,
    checkpoint_steps,
    run_of_checkpoint,
)
from efficientdet.model.checkpoints import checkpoint_folder, checkpoint_step, resolve_checkpoint
from efficientdet.model.description import describe_checkpoint
from efficientdet.train.input import decoded_examples

log = logging.getLogger(__name__)

FORMATS = ("saved_model", "frozen_graph", "tflite", "onnx")
SAVED_MODEL = "saved_model"
FROZEN_GRAPH = "frozen_model.pb"
FROZEN_GRAPH_NAMES = "frozen_model.json"
ONNX_MODEL = "model.onnx"
LABEL_MAP = "label_map.yaml"
ONNX_OPSET = 17


def tflite_name(quantization):
    return f"model_{quantization}.tflite"


def add_arguments(parser):
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint prefix (models/run/checkpoints/ckpt-1200), or a "
        "folder (models/run/checkpoints or models/run) to --select from",
    )
    parser.add_argument(
        "--select",
        choices=("last", "best"),
        default="last",
        help="from a folder: the last checkpoint, or the best by COCO AP in "
        "--eval_dir; default last",
    )
    parser.add_argument(
        "--eval_dir",
        help="per-checkpoint evaluations ckpt-{step}.json (default results/{run}/eval)",
    )
    parser.add_argument("--model_name", help="variant, for checkpoints without a run's model.yaml")
    parser.add_argument("--image_size", help="int or WxH, for checkpoints without model.yaml")
    parser.add_argument(
        "--label_map",
        help="label_map.yaml; required without model.yaml, checked against it otherwise",
    )
    parser.add_argument("--output_dir", help="export folder (default models/{run}/export)")
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=FORMATS,
        default=list(FORMATS),
        help="what to export; default all",
    )
    parser.add_argument(
        "--quantizations",
        nargs="+",
        choices=QUANTIZATIONS,
        default=list(QUANTIZATIONS),
        help="TFLite variants; default all",
    )
    parser.add_argument(
        "--calibration_file_pattern",
        help="training TFRecords whose images calibrate the int8 TFLite model",
    )
    parser.add_argument(
        "--calibration_images",
        type=int,
        default=100,
        help="number of calibration images; default 100",
    )
    parser.add_argument("--run", help="training run name for the metadata (default: from the path)")


def run(args):
    given = Path(args.checkpoint)
    folder = checkpoint_folder(given) if given.is_dir() else given.parent
    run = run_of_checkpoint(folder / "ckpt")
    if not args.output_dir and run is None:
        raise UserError(f"{given}: not a training run's checkpoints; give --output_dir")
    run_name = args.run or (run.model_dir.name if run else folder.name)
    eval_dir = Path(args.eval_dir) if args.eval_dir else RunFiles.named(run_name).eval_dir
    if given.is_dir():
        checkpoint = select_checkpoint(folder, args.select, eval_dir)
    else:
        checkpoint = Path(resolve_checkpoint(given))
    output_dir = Path(args.output_dir) if args.output_dir else run.export
    if "onnx" in args.formats and importlib.util.find_spec("tf2onnx") is None:
        raise UserError(
            "ONNX export needs tf2onnx: pip install 'efficientdet-workflow[onnx]', "
            "or leave onnx out of --formats"
        )
    int8 = "tflite" in args.formats and "int8" in args.quantizations
    if int8 and not args.calibration_file_pattern:
        raise UserError("--calibration_file_pattern is required for the int8 TFLite model")
    description = describe_checkpoint(checkpoint, args.model_name, args.image_size, args.label_map)
    step = checkpoint_step(checkpoint)
    metadata = {
        **description.as_dict(),
        "run": run_name,
        "checkpoint": str(checkpoint),
        "step": step,
        "metrics": evaluation_metrics(eval_dir, step),
        "versions": versions(),
        "nms": nms_options(description.config),
        "signatures": signatures(description),
    }
    calibration = None
    if int8:
        calibration = calibration_images(
            args.calibration_file_pattern, description.config, args.calibration_images
        )
    detector = detector_from_checkpoint(checkpoint, description)
    with atomic_output(output_dir, directory=True) as folder:
        exported = export_all(
            detector, description, folder, args.formats, args.quantizations, calibration
        )
        write_metadata(folder, metadata, exported)
    log.info("%s: exported %s of %s step %d", output_dir, ", ".join(exported), run_name, step)


def export_all(detector, description, folder, formats, quantizations, calibration):
    """Writes the chosen formats into `folder`; returns the names written."""
    write_label_map(folder / LABEL_MAP, description.label_map)
    exported = [LABEL_MAP]
    if "saved_model" in formats or "frozen_graph" in formats:
        log.info("freezing the graph")
        frozen = freeze(detector.detect)
    if "saved_model" in formats:
        log.info("writing the SavedModel")
        label_map = tf.saved_model.Asset(str(folder / LABEL_MAP))
        save_frozen(detector.detect, folder / SAVED_MODEL, frozen, label_map=label_map)
        exported.append(SAVED_MODEL)
    if "frozen_graph" in formats:
        names = write_frozen_graph(frozen, folder / FROZEN_GRAPH, [INPUT_NAME], OUTPUT_NAMES)
        (folder / FROZEN_GRAPH_NAMES).write_text(json.dumps(names, indent=2) + "\n")
        exported += [FROZEN_GRAPH, FROZEN_GRAPH_NAMES]
    if "tflite" in formats:
        log.info("converting to TFLite: %s", ", ".join(quantizations))
        for quantization, model in convert_to_tflite(
            detector.network, quantizations, calibration
        ).items():
            (folder / tflite_name(quantization)).write_bytes(model)
            exported.append(tflite_name(quantization))
    if "onnx" in formats:
        log.info("converting to ONNX")
        save_onnx(detector, folder / ONNX_MODEL)
        exported.append(ONNX_MODEL)
    return exported


def save_onnx(detector, path):
    import tf2onnx

    tf2onnx.convert.from_function(
        detector.network,
        input_signature=detector.network.input_signature,
        opset=ONNX_OPSET,
        output_path=str(path),
    )


def select_checkpoint(folder, select, eval_dir):
    """The last checkpoint of `folder`, or the one with the best COCO AP in `eval_dir`."""
    steps = checkpoint_steps(folder)
    if not steps:
        raise UserError(f"{folder}: no checkpoint (ckpt-<step>.index) in this folder")
    if select == "last":
        return folder / CHECKPOINT_NAME.format(step=steps[-1])
    scored = []
    for step in steps:
        metrics = evaluation_metrics(eval_dir, step)
        if metrics and metrics.get("AP") is not None:
            scored.append((metrics["AP"], step))
    if not scored:
        raise UserError(
            f"{eval_dir}: no COCO evaluation of any checkpoint in {folder} "
            "(evaluate them first, or export the last checkpoint)"
        )
    ap, step = max(scored)
    log.info("best checkpoint: step %d (AP %.4f) of %d evaluated", step, ap, len(scored))
    return folder / CHECKPOINT_NAME.format(step=step)


def evaluation_metrics(eval_dir, step):
    """The COCO metrics of `efficientdet evaluate` for checkpoint `step`, or None."""
    path = Path(eval_dir) / EVALUATION_NAME.format(step=step)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["metrics"]
    except (json.JSONDecodeError, KeyError) as error:
        raise UserError(
            f"{path}: not an evaluation written by efficientdet evaluate ({error!r})"
        ) from None


def calibration_images(file_pattern, config, count):
    """Up to `count` training images, resized and padded to the model size as uint8."""
    images = []
    try:
        for example in decoded_examples(file_pattern, training=False).take(count):
            images.append(letterbox(example["image"], config.image_size)[0])
    except tf.errors.OpError as error:
        raise UserError(
            f"{file_pattern}: cannot read calibration images ({error.message})"
        ) from None
    if not images:
        raise UserError(f"{file_pattern}: no calibration images in these TFRecords")
    log.info("int8 calibration on %d images of %s", len(images), file_pattern)
    return images


def versions():
    found = {
        "efficientdet": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        import tf2onnx

        found.update(tf2onnx=tf2onnx.__version__, onnx_opset=ONNX_OPSET)
    except ImportError:
        pass
    return found


def signatures(description):
    """Inputs and outputs of each exported function, for users of the files."""
    height, width = description.config.image_size
    classes = description.num_classes
    return {
        "serving_default": {
            "inputs": {INPUT_NAME: "uint8 [batch, height, width, 3] RGB, any size"},
            "outputs": {
                "boxes": "float32 [batch, N, 4] ymin, xmin, ymax, xmax in input pixels",
                "scores": "float32 [batch, N]",
                "classes": "int32 [batch, N] label ids (0 in padding)",
                "num_detections": "int32 [batch]",
            },
        },
        "network": {
            "inputs": {
                INPUT_NAME: f"uint8 [batch, {height}, {width}, 3] RGB, resized keeping "
                "the aspect ratio and zero-padded bottom-right"
            },
            "outputs": {
                NETWORK_OUTPUT_NAMES[0]: f"float32 [batch, anchors, {classes}] logits",
                NETWORK_OUTPUT_NAMES[1]: "float32 [batch, anchors, 4] ty, tx, th, tw",
            },
            "postprocess": "decode against the anchors of config, sigmoid, NMS as in nms",
        },
    }
