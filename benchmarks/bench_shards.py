"""Throughput of the shard stage: Snakemake shard jobs at 1 and 2 cores against a plain
one-process conversion with TensorFlow's tf.io.TFRecordWriter, on the sample replicated to about
10k images; the fixed cost of one shard job; the no-op `snakemake -n tfrecords` with 100 shards.
Wall times depend on what else the machine runs; CPU seconds (of every process involved) less so,
so both are printed.

    .venv/bin/python benchmarks/bench_shards.py [--copies 67] [--workdir DIR]
"""

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_ZIP = REPO / "resources" / "sample-voc.zip"

# The baseline: what one would write with TensorFlow at hand, one process, no Snakemake.
TF_BASELINE = r"""
import math, sys
from pathlib import Path
import tensorflow as tf
from efficientdet.data.annotations import read_split
from efficientdet.data.label_map import read_label_map

data, images_per_shard = Path(sys.argv[1]), int(sys.argv[2])
label_of = {name: i for i, name in read_label_map(data / "label_map.yaml").items()}
out = data / "tf_baseline"
out.mkdir(exist_ok=True)

def floats(values): return tf.train.Feature(float_list=tf.train.FloatList(value=values))
def ints(values): return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
def strings(values): return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

for split in ("train", "val"):
    selected = read_split(data / "splits" / f"{split}.txt", data / "annotations.csv")
    count = math.ceil(len(selected) / images_per_shard)
    for index in range(count):
        path = out / f"{split}-{index:05d}-of-{count:05d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for e in selected[index::count]:
                b = e.objects
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": strings([(data / "voc" / e.image).read_bytes()]),
                    "image/format": strings([e.format.encode()]),
                    "image/filename": strings([e.image.encode()]),
                    "image/source_id": strings([str(e.image_id).encode()]),
                    "image/height": ints([e.height]), "image/width": ints([e.width]),
                    "image/object/bbox/xmin": floats([o.xmin / e.width for o in b]),
                    "image/object/bbox/ymin": floats([o.ymin / e.height for o in b]),
                    "image/object/bbox/xmax": floats([o.xmax / e.width for o in b]),
                    "image/object/bbox/ymax": floats([o.ymax / e.height for o in b]),
                    "image/object/class/label": ints([label_of[o.name] for o in b]),
                    "image/object/class/text": strings([o.name.encode() for o in b]),
                    "image/object/area": floats([(o.xmax - o.xmin) * (o.ymax - o.ymin) for o in b]),
                    "image/object/difficult": ints([o.difficult for o in b]),
                    "image/object/truncated": ints([o.truncated for o in b]),
                    "image/object/is_crowd": ints([0] * len(b)),
                }))
                writer.write(example.SerializeToString())
"""


def _replicated_zip(path, copies):
    """The sample's files `copies` times over, each copy in its own folder (flat layout)."""
    with zipfile.ZipFile(SAMPLE_ZIP) as sample, zipfile.ZipFile(path, "w") as replicated:
        files = [
            (info.filename, sample.read(info)) for info in sample.infolist() if not info.is_dir()
        ]
        for copy in range(copies):
            for name, data in files:
                replicated.writestr(f"bench/copy{copy:03d}/{Path(name).name}", data)


def _environment():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _timed(command):
    """(wall seconds, CPU seconds of the command and all its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _snakemake(workdir, *args):
    return _timed(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--quiet",
            "all",
            *map(str, args),
        ]
    )


def _configure(workdir, images_per_shard):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["dataset"].update(name="bench", url="bench.zip", images_per_shard=images_per_shard)
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def _clear_shards(data):
    shutil.rmtree(data / "tfrecords", ignore_errors=True)
    (data / "val_coco.json").unlink(missing_ok=True)


def _report(label, wall, cpu, images):
    print(
        f"{label}: {wall:.1f} s wall, {images / wall:.0f} images/s; "
        f"{cpu:.1f} CPU-s, {images / cpu:.0f} images per CPU-s"
    )


def _shard_run(workdir, data, cores, images_per_shard, images):
    _configure(workdir, images_per_shard)
    _clear_shards(data)
    wall, cpu = _snakemake(workdir, "--cores", cores, "tfrecords")
    jobs = len(list((data / "tfrecords").glob("*.tfrecord")))
    _report(f"snakemake tfrecords, {cores} core(s), {jobs} shard jobs", wall, cpu, images)
    print(f"  per shard job: {wall * cores / jobs:.2f} core-s wall, {cpu / jobs:.2f} CPU-s")
    return wall, cpu


def _single_shard_job(data, repeats=5):
    """Median (wall, CPU) seconds of one `efficientdet shard` writing a 1-image shard."""
    images = len((data / "splits" / "val.txt").read_text().splitlines())
    command = [
        str(BIN / "efficientdet"),
        "shard",
        "--annotations",
        data / "annotations.csv",
        "--label_map",
        data / "label_map.yaml",
        "--split",
        data / "splits" / "val.txt",
        "--voc",
        data / "voc",
        "--shard_index",
        "0",
        "--num_shards",
        str(images),
        "--output",
        data / "one.tfrecord",
    ]
    walls, cpus = zip(*(_timed(command) for _ in range(repeats)))
    return statistics.median(walls), statistics.median(cpus)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=67, help="sample copies (150 images each)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_shards."))
    workdir.mkdir(parents=True, exist_ok=True)
    images = 150 * args.copies
    data = workdir / "results" / "bench"
    print(
        f"workdir {workdir}, {images} images, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    _replicated_zip(workdir / "bench.zip", args.copies)
    _configure(workdir, 200)
    wall, cpu = _snakemake(workdir, "--cores", 2, "results/bench/splits/train.txt")
    print(f"download + unpack + index + split: {wall:.1f} s wall, {cpu:.1f} CPU-s")

    one_core = _shard_run(workdir, data, 1, 200, images)
    two_cores = _shard_run(workdir, data, 2, 200, images)
    baseline = _timed([sys.executable, "-c", TF_BASELINE, str(data), "200"])
    _report("one process with TensorFlow (tf.io.TFRecordWriter)", *baseline, images)
    print(
        f"wall-time speed-up over it: {baseline[0] / one_core[0]:.2f}x at 1 core, "
        f"{baseline[0] / two_cores[0]:.2f}x at 2 cores; "
        f"CPU-time ratio {baseline[1] / one_core[1]:.2f}x"
    )
    wall, cpu = _single_shard_job(data)
    print(
        f"one `efficientdet shard` process writing a 1-image shard: {wall:.2f} s wall, "
        f"{cpu:.2f} CPU-s"
    )

    _shard_run(workdir, data, 2, math.ceil(images / 100), images)
    shards = len(list((data / "tfrecords").glob("*.tfrecord")))
    walls, cpus = zip(*(_snakemake(workdir, "-n", "tfrecords") for _ in range(3)))
    print(
        f"no-op `snakemake -n tfrecords` with {shards} shards: median "
        f"{statistics.median(walls):.2f} s wall ({', '.join(f'{t:.2f}' for t in walls)}), "
        f"{statistics.median(cpus):.2f} CPU-s"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
