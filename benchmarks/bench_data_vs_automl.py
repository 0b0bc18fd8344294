"""VOC -> TFRecords side by side with google/automl's `dataset/create_pascal_tfrecord.py`.

The corpus is made here, like real data: --images JPEGs of 640x480 (smooth random scenes,
~30-60 KB each) with 5-20 boxes of the 20 VOC classes, in a VOCdevkit/VOC2012 layout, zipped.
The original converts the unpacked folder in one process (TensorFlow import included); this
project runs `snakemake --cores 2 tfrecords` from the zip (unpack, index with every check,
split, shards, COCO ground truth). Both write the same images into as many shards; the ratio is the
original's wall time over ours (images/s, higher is better).

    # AUTOML_DIR, AUTOML_PY: from ../shared/tools/automl-baseline/setup.sh
    . /work/automl-env/env.sh
    .venv/bin/python benchmarks/bench_data_vs_automl.py [--images 10000] [--workdir DIR] [--runs 2]

Without AUTOML_DIR / AUTOML_PY only this project's figure is printed.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import yaml
from automl_baseline import BIN, REPO, original_available, project_environment

from efficientdet.automl_hparams import VOC

CLASSES = tuple(VOC.values())  # the original's VOC label map
WIDTH, HEIGHT = 640, 480


def _scene(rng, noises):
    """A 640x480 JPEG that compresses like a photo: smooth colour fields plus sensor noise."""
    small = rng.integers(0, 256, (HEIGHT // 32, WIDTH // 32, 3), dtype=np.uint8)
    pixels = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    pixels = cv2.add(pixels, noises[rng.integers(len(noises))])
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _annotation(name, rng):
    objects = []
    for _ in range(rng.integers(5, 21)):
        xmin, ymin = int(rng.integers(1, WIDTH - 40)), int(rng.integers(1, HEIGHT - 40))
        xmax = int(rng.integers(xmin + 20, min(WIDTH, xmin + 300)))
        ymax = int(rng.integers(ymin + 20, min(HEIGHT, ymin + 300)))
        objects.append(
            f"<object><name>{CLASSES[rng.integers(len(CLASSES))]}</name><pose>Unspecified</pose>"
            f"<truncated>0</truncated><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    return (
        f"<annotation><folder>VOC2012</folder><filename>{name}.jpg</filename>"
        f"<size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{''.join(objects)}</annotation>"
    )


def make_corpus(folder, images):
    """folder/VOCdevkit/VOC2012 and folder/corpus.zip of it; kept for later runs."""
    archive = folder / "corpus.zip"
    voc = folder / "VOCdevkit" / "VOC2012"
    if archive.exists() and len(list((voc / "JPEGImages").iterdir())) == images:
        return voc.parent, archive
    shutil.rmtree(folder / "VOCdevkit", ignore_errors=True)
    rng = np.random.default_rng(0)
    noises = rng.integers(0, 12, (8, HEIGHT, WIDTH, 3), dtype=np.uint8)
    names = [f"2012_{index:06d}" for index in range(images)]
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    for name in names:
        (voc / "JPEGImages" / f"{name}.jpg").write_bytes(_scene(rng, noises))
        (voc / "Annotations" / f"{name}.xml").write_text(_annotation(name, rng))
    listing = "".join(f"{name}\n" for name in names)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text(listing)
    # The original lists its images from `<second class of the label map>_<set>.txt`.
    (voc / "ImageSets" / "Main" / f"{CLASSES[0]}_trainval.txt").write_text(
        "".join(f"{name}  1\n" for name in names)
    )
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        for path in sorted(voc.rglob("*")):
            zipped.write(path, path.relative_to(folder))
    return voc.parent, archive


def _timed(command, **kwargs):
    """(wall seconds, CPU seconds of the command and all its descendants): on a busy machine
    the CPU seconds tell more than the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def run_original(devkit, output, shards):
    automl_dir, automl_py = os.environ["AUTOML_DIR"], os.environ["AUTOML_PY"]
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    label_map = output / "label_map.json"
    label_map.write_text(json.dumps({"background": 0, **{c: i for i, c in enumerate(CLASSES, 1)}}))
    return _timed(
        [
            automl_py,
            "dataset/create_pascal_tfrecord.py",
            f"--data_dir={devkit}",
            "--year=VOC2012",
            "--set=trainval",
            f"--output_path={output}/ds",
            f"--label_map_json_path={label_map}",
            f"--num_shards={shards}",
        ],
        cwd=automl_dir,
        stderr=subprocess.DEVNULL,
    )


def run_project(archive, workdir):
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "config").mkdir(parents=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["dataset"].update(name="bench", url=str(archive))
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.time()
    times = _timed(
        [
            str(BIN / "snakemake"),
            "tfrecords",
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "2",
            "--quiet",
            "all",
        ],
        env=project_environment(),
        stderr=subprocess.DEVNULL,
    )
    shards = len(list((workdir / "results" / "bench" / "tfrecords").glob("*.tfrecord")))
    logs = workdir / "logs" / "bench"
    finished = {path.stem: path.stat().st_mtime - start for path in logs.glob("*.log")}
    finished["shards"] = max(path.stat().st_mtime - start for path in logs.glob("shard/*.log"))
    print(
        "  stages done after: "
        + ", ".join(
            f"{stage} {seconds:.1f} s"
            for stage, seconds in sorted(finished.items(), key=lambda x: x[1])
        )
    )
    return times, shards


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_data")
    parser.add_argument("--runs", type=int, default=2, help="side-by-side runs")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    devkit, archive = make_corpus(args.workdir, args.images)
    print(
        f"corpus: {args.images} JPEGs {WIDTH}x{HEIGHT} in {archive} "
        f"({archive.stat().st_size / 1e6:.0f} MB), made in {time.perf_counter() - start:.0f} s"
    )
    has_original = original_available()
    for run in range(1, args.runs + 1):
        (ours, our_cpu), shards = run_project(archive, args.workdir / "project")
        line = (
            f"run {run}: this project {ours:.1f} s, {our_cpu:.1f} CPU-s "
            f"({args.images / ours:.0f} images/s, {shards} shards)"
        )
        if has_original:
            original, original_cpu = run_original(devkit, args.workdir / "original", shards)
            line += (
                f"; google/automl {original:.1f} s, {original_cpu:.1f} CPU-s "
                f"({args.images / original:.0f} images/s); ratio {original / ours:.2f}x "
                f"wall, {original_cpu / our_cpu:.2f}x CPU"
            )
        print(line, f"(load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
