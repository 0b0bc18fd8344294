"""`efficientdet infer`: detect objects in images with a checkpoint or any exported model.

--model picks the backend by its path: a checkpoint (prefix or folder), an export folder or its
saved_model/, frozen_model.pb, a .tflite or a .onnx file. --images is an image, a folder, a
glob or a .txt list of paths (relative to --image_root). Writes into --output_dir, all or
nothing: images/ (each input with its boxes, class names and scores drawn), detections.csv and
detections.json (one row per detection: image, width, height, label_id, label, score, ymin,
xmin, ymax, xmax in original pixels). Images that cannot be decoded are skipped with a warning.

--benchmark times each --model instead: latency per image at batch 1 and throughput at
--batch_size, after warm-up runs, on the first images given.
"""

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from efficientdet.atomic import atomic_output
from efficientdet.data.image_files import find_images, read_image
from efficientdet.data.label_map import read_label_map
from efficientdet.drawing import draw_detections
from efficientdet.errors import UserError
from efficientdet.export.serving import letterbox
from efficientdet.infer.backends import load_backend
from efficientdet.model.description import describe_difference

log = logging.getLogger(__name__)

COLUMNS = ["image", "width", "height", "label_id", "label", "score", "ymin", "xmin", "ymax", "xmax"]
IMAGES = "images"
CSV = "detections.csv"
JSON = "detections.json"


def add_arguments(parser):
    parser.add_argument(
        "--model",
        nargs="+",
        required=True,
        help="checkpoint, export folder, saved_model/, .pb, .tflite or .onnx; "
        "several only with --benchmark",
    )
    parser.add_argument(
        "--images",
        required=True,
        help="an image, a folder, a glob pattern, or a .txt list of paths",
    )
    parser.add_argument(
        "--image_root", help="folder the paths of a .txt list are relative to (default: its own)"
    )
    parser.add_argument("--output_dir", help="folder for the predictions (not with --benchmark)")
    parser.add_argument(
        "--min_score",
        type=float,
        default=0.3,
        help="keep detections scoring at least this; default 0.3",
    )
    parser.add_argument("--batch_size", type=int, default=8, help="images per batch; default 8")
    parser.add_argument(
        "--label_map",
        help="label_map.yaml: needed for checkpoints without model.yaml, "
        "checked against the model's otherwise",
    )
    parser.add_argument("--model_name", help="variant, for checkpoints without model.yaml")
    parser.add_argument("--image_size", help="int or WxH, for checkpoints without model.yaml")
    parser.add_argument(
        "--benchmark", action="store_true", help="time each --model instead of writing predictions"
    )
    parser.add_argument(
        "--benchmark_runs", type=int, default=20, help="timed runs per batch size; default 20"
    )
    parser.add_argument("--warmup_runs", type=int, default=3, help="untimed runs first; default 3")


def run(args):
    if args.batch_size < 1:
        raise UserError(f"--batch_size={args.batch_size}: must be at least 1")
    if not 0 <= args.min_score <= 1:
        raise UserError(f"--min_score={args.min_score}: must be between 0 and 1")
    paths = find_images(args.images, args.image_root)
    if args.benchmark:
        print(benchmark_table(args, paths).to_string(index=False), flush=True)
        return
    if len(args.model) > 1:
        raise UserError("--model: give one model (several only with --benchmark)")
    if not args.output_dir:
        raise UserError("--output_dir is required (where the predictions go)")
    backend = open_backend(args, args.model[0])
    table, done = predict(backend, paths, Path(args.output_dir), args.min_score, args.batch_size)
    log.info(
        "%s: %d detections scoring >= %.2f on %d images -> %s",
        backend.kind,
        len(table),
        args.min_score,
        done,
        args.output_dir,
    )


def open_backend(args, path):
    backend = load_backend(path, args.model_name, args.image_size, args.label_map)
    if args.label_map:
        given = read_label_map(args.label_map)
        if given != backend.description.label_map:
            raise UserError(
                f"{args.label_map}: label map does not match the model {path}: "
                f"{describe_difference(backend.description.label_map, given)}"
            )
    return backend


def predict(backend, paths, output_dir, min_score, batch_size):
    """Runs `backend` on every image and writes output_dir as described above.

    Returns the detections table and the number of images decoded.
    """
    label_map = backend.description.label_map
    names = output_names(paths)
    rows, done = [], 0
    with atomic_output(output_dir, directory=True) as folder:
        (folder / IMAGES).mkdir()
        progress = tqdm(total=len(paths), unit="image", disable=len(paths) <= batch_size)
        for start in range(0, len(paths), batch_size):
            batch = decoded_images(paths[start : start + batch_size])
            if batch:
                batch_paths, images = zip(*batch)
                for path, image, found in zip(batch_paths, images, detect_images(backend, images)):
                    keep = found["scores"] >= min_score
                    found = {key: value[keep] for key, value in found.items()}
                    rows += detection_rows(names[path], image.shape, found, label_map)
                    annotated = draw_detections(
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        found["boxes"],
                        found["classes"],
                        found["scores"],
                        label_map,
                    )
                    write_image(folder / IMAGES / names[path], annotated)
                    done += 1
            progress.update(min(batch_size, len(paths) - start))
        progress.close()
        if not done:
            raise UserError(f"none of the {len(paths)} images could be decoded")
        table = pd.DataFrame(rows, columns=COLUMNS)
        table.to_csv(folder / CSV, index=False)
        table.to_json(folder / JSON, orient="records", indent=2)
    return table, done


def output_names(paths):
    """Names of the annotated images: the paths relative to the inputs' common folder."""
    parents = [str(Path(path).resolve().parent) for path in paths]
    common = Path(os.path.commonpath(parents))
    return {path: str(Path(path).resolve().relative_to(common)) for path in paths}


def decoded_images(paths):
    """[(path, RGB image)] of the paths that decode."""
    images = [(path, read_image(path)) for path in paths]
    return [(path, image) for path, image in images if image is not None]


def detect_images(backend, images):
    """Per image: numpy boxes (yxyx, original pixels, clipped), scores, classes."""
    image_size = backend.description.config.image_size
    batch, scales = zip(*(letterbox(image, image_size) for image in images))
    detections = backend.detect(np.stack(batch))
    results = []
    for index, (image, scale) in enumerate(zip(images, scales)):
        count = int(detections["num_detections"][index])
        height, width = image.shape[:2]
        boxes = np.clip(
            detections["boxes"][index][:count] * scale, 0, [height, width, height, width]
        )
        results.append(
            {
                "boxes": boxes,
                "scores": detections["scores"][index][:count],
                "classes": detections["classes"][index][:count],
            }
        )
    return results


def detection_rows(name, shape, found, label_map):
    height, width = shape[:2]
    return [
        {
            "image": name,
            "width": width,
            "height": height,
            "label_id": int(label_id),
            "label": label_map.get(int(label_id), str(int(label_id))),
            "score": float(score),
            "ymin": float(box[0]),
            "xmin": float(box[1]),
            "ymax": float(box[2]),
            "xmax": float(box[3]),
        }
        for box, label_id, score in zip(found["boxes"], found["classes"], found["scores"])
    ]


def write_image(path, image_bgr):
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", image_bgr)
    if not ok:
        raise UserError(f"{path}: OpenCV cannot encode this image type")
    encoded.tofile(path)


def benchmark_table(args, paths):
    """Latency and throughput of each --model on the first --batch_size decodable images."""
    rows = []
    for model in args.model:
        backend = open_backend(args, model)
        images = benchmark_images(paths, backend.description.config.image_size, args.batch_size)
        for batch_size in sorted({1, args.batch_size}):
            seconds = time_backend(
                backend, images[:batch_size], args.warmup_runs, args.benchmark_runs
            )
            rows.append(
                {
                    "backend": backend.kind,
                    "model": str(model),
                    "batch": batch_size,
                    "ms_per_batch": 1000 * seconds,
                    "ms_per_image": 1000 * seconds / batch_size,
                    "images_per_s": batch_size / seconds,
                }
            )
    return pd.DataFrame(rows).round(2)


def benchmark_images(paths, image_size, count):
    """`count` letterboxed images (the decodable ones of `paths`, repeated as needed)."""
    images = []
    for path in paths:
        image = read_image(path)
        if image is not None:
            images.append(letterbox(image, image_size)[0])
        if len(images) == count:
            break
    if not images:
        raise UserError(f"none of the {len(paths)} images could be decoded")
    return np.stack([images[index % len(images)] for index in range(count)])


def time_backend(backend, batch, warmup_runs, runs):
    """Median seconds of one detect() call on `batch` (decode and NMS included)."""
    for _ in range(warmup_runs):
        backend.detect(batch)
    timings = []
    for _ in range(max(runs, 1)):
        started = time.perf_counter()
        backend.detect(batch)
        timings.append(time.perf_counter() - started)
    return float(np.median(timings))
