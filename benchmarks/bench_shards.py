"""Throughput of the shard stage: Snakemake shard jobs at 1 and 2 cores against a plain
one-process conversion with TensorFlow's tf.io.TFRecordWriter, on the sample replicated to about
10k images; the fixed cost of one shard job; the no-op `snakemake -n tfrecords` with 100 shards.

    .venv/bin/python benchmarks/bench_shards.py [--copies 67] [--workdir DIR]
"""

import argparse
import math
import os
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
        files = [(info.filename, sample.read(info)) for info in sample.infolist() if not info.is_dir()]
        for copy in range(copies):
            for name, data in files:
                replicated.writestr(f"bench/copy{copy:03d}/{Path(name).name}", data)


def _environment():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _snakemake(workdir, *args):
    command = [str(BIN / "snakemake"), "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(workdir), "--quiet", "all", *map(str, args)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=_environment(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _configure(workdir, images_per_shard):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["dataset"].update(name="bench", url="bench.zip", images_per_shard=images_per_shard)
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def _clear_shards(data):
    shutil.rmtree(data / "tfrecords", ignore_errors=True)
    (data / "val_coco.json").unlink(missing_ok=True)


def _shard_run(workdir, data, cores, images_per_shard, images):
    _configure(workdir, images_per_shard)
    _clear_shards(data)
    seconds = _snakemake(workdir, "--cores", cores, "tfrecords")
    jobs = len(list((data / "tfrecords").glob("*.tfrecord")))
    print(f"snakemake tfrecords, {cores} core(s), {jobs} shard jobs: {seconds:.1f} s, "
          f"{images / seconds:.0f} images/s, {seconds * cores / jobs:.2f} core-s per shard job")
    return seconds, jobs


def _single_shard_job_seconds(data, repeats=5):
    """Wall time of one `efficientdet shard` process writing a 1-image shard: the fixed cost."""
    images = len((data / "splits" / "val.txt").read_text().splitlines())
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "efficientdet"), "shard", "--annotations", data / "annotations.csv",
             "--label-map", data / "label_map.yaml", "--split", data / "splits" / "val.txt",
             "--voc", data / "voc", "--shard-index", "0", "--num-shards", str(images),
             "--output", data / "one.tfrecord"],
            check=True, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=67, help="sample copies (150 images each)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_shards."))
    workdir.mkdir(parents=True, exist_ok=True)
    images = 150 * args.copies
    data = workdir / "results" / "bench"
    print(f"workdir {workdir}, {images} images, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")

    _replicated_zip(workdir / "bench.zip", args.copies)
    _configure(workdir, 200)
    seconds = _snakemake(workdir, "--cores", 2, "results/bench/splits/train.txt")
    print(f"download + unpack + index + split: {seconds:.1f} s")

    one_core, _ = _shard_run(workdir, data, 1, 200, images)
    two_cores, _ = _shard_run(workdir, data, 2, 200, images)

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", TF_BASELINE, str(data), "200"], check=True,
                   env=_environment(), stderr=subprocess.DEVNULL)
    baseline = time.perf_counter() - start
    print(f"one process with TensorFlow (tf.io.TFRecordWriter): {baseline:.1f} s, "
          f"{images / baseline:.0f} images/s")
    print(f"speed-up over the baseline: {baseline / one_core:.2f}x at 1 core, "
          f"{baseline / two_cores:.2f}x at 2 cores")
    print(f"one `efficientdet shard` job writing a 1-image shard: "
          f"{_single_shard_job_seconds(data):.2f} s")

    per_shard = math.ceil(images / 100)
    _shard_run(workdir, data, 2, per_shard, images)
    timings = [_snakemake(workdir, "-n", "tfrecords") for _ in range(3)]
    print(f"no-op `snakemake -n tfrecords` with "
          f"{len(list((data / 'tfrecords').glob('*.tfrecord')))} shards: "
          f"median {statistics.median(timings):.2f} s of {', '.join(f'{t:.2f}' for t in timings)}")


if __name__ == "__main__":
    main()
