"""COCO AP of each exported format on a validation split: what quantization costs.

    .venv/bin/python benchmarks/bench_export_ap.py --export models/sample-efficientdet-d0/export \
        --val_file_pattern 'results/sample/tfrecords/val-*.tfrecord'

Every format sees the same pre-processed images (resized and padded to the model size as uint8,
as `efficientdet infer` does); detections are scored with pycocotools against val_coco.json
(default: beside the tfrecords folder). Prints AP, AP50 and the difference to the SavedModel.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from efficientdet.evaluate.coco import evaluate_detections, load_ground_truth
from efficientdet.export.serving import letterbox
from efficientdet.infer.backends import load_backend
from efficientdet.train.input import decoded_examples

FORMATS = (
    "saved_model",
    "frozen_model.pb",
    "model_fp32.tflite",
    "model_fp16.tflite",
    "model_int8.tflite",
    "model.onnx",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, type=Path, help="an export folder")
    parser.add_argument("--val_file_pattern", required=True)
    parser.add_argument("--val_json_file", help="default: val_coco.json beside tfrecords/")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument("--batch_size", type=int, default=8)
    return parser.parse_args()


def validation_images(file_pattern, image_size):
    """[(source id, letterboxed uint8 image, scale, (height, width))] of the split."""
    images = []
    for example in decoded_examples(file_pattern, training=False):
        resized, scale = letterbox(example["image"], image_size)
        images.append(
            (int(example["source_id"]), resized, scale, tuple(example["image_size"].numpy()))
        )
    return images


def coco_detections(backend, images, batch_size):
    results = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        found = backend.detect(np.stack([image for _, image, _, _ in batch]))
        for index, (image_id, _, scale, (height, width)) in enumerate(batch):
            count = int(found["num_detections"][index])
            boxes = np.clip(
                found["boxes"][index][:count] * scale, 0, [height, width, height, width]
            )
            for (ymin, xmin, ymax, xmax), score, label_id in zip(
                boxes.tolist(),
                found["scores"][index][:count].tolist(),
                found["classes"][index][:count].tolist(),
            ):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label_id),
                        "bbox": [xmin, ymin, xmax - xmin, ymax - ymin],
                        "score": score,
                    }
                )
    return results


def main():
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    json_file = args.val_json_file or Path(args.val_file_pattern).parent.parent / "val_coco.json"
    ground_truth = load_ground_truth(json_file)
    images = None
    rows = []
    for name in args.formats:
        backend = load_backend(args.export / name)
        if images is None:
            images = validation_images(args.val_file_pattern, backend.description.config.image_size)
        detections = coco_detections(backend, images, args.batch_size)
        metrics = evaluate_detections(
            ground_truth, detections, [image_id for image_id, *_ in images]
        ).metrics
        rows.append(
            {
                "format": name,
                "AP": metrics["AP"],
                "AP50": metrics["AP50"],
                "detections": len(detections),
            }
        )
    table = pd.DataFrame(rows)
    table["AP_change"] = table["AP"] - table["AP"].iloc[0]
    print(f"{len(images)} validation images of {args.val_file_pattern}")
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
