"""Unpacking speed: `efficientdet unpack`'s checked extraction against the standard library's
`tarfile.extractall(filter="data")` and GNU tar, on a VOC-like tar (plain and gzip) of
random-content "JPEGs", and on the same files as a zip. Prints the best of three runs in seconds
and MB/s side by side.

    .venv/bin/python benchmarks/bench_unpack.py [--files 1000] [--kb 100]
"""

import argparse
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from efficientdet.data.archive import safe_extract


def build(folder, files, size):
    data = os.urandom(size)
    names = [f"VOCdevkit/VOC2007/JPEGImages/{index:06d}.jpg" for index in range(files)]
    archives = {}
    for suffix, mode in (("tar", "w"), ("tar.gz", "w:gz")):
        path = archives[suffix] = folder / f"voc.{suffix}"
        with tarfile.open(path, mode) as archive:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = size
                archive.addfile(info, io.BytesIO(data))
    path = archives["zip"] = folder / "voc.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, data)
    return archives


def timed(extract, archive, folder, repeats=3):
    """The best of `repeats` runs: the first also pays for reading the archive from disk."""
    times = []
    for _ in range(repeats):
        target = Path(tempfile.mkdtemp(dir=folder))
        started = time.perf_counter()
        extract(archive, target)
        times.append(time.perf_counter() - started)
        shutil.rmtree(target)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        archives = build(folder, args.files, args.kb * 1000)
        megabytes = args.files * args.kb / 1000
        print(f"{args.files} files of {args.kb} kB ({megabytes:.0f} MB)")
        print(
            f"{'archive':8} {'ours s':>8} {'tarfile s':>10} {'GNU tar s':>10} {'ours MB/s':>10} "
            f"{'ours/tarfile':>13} {'ours/GNU':>9}"
        )
        for suffix, archive in archives.items():
            ours = timed(lambda a, t: safe_extract([a], t, 10**12), archive, folder)
            if suffix == "zip":
                reference = timed(lambda a, t: zipfile.ZipFile(a).extractall(t), archive, folder)
                gnu = None
            else:
                reference = timed(
                    lambda a, t: tarfile.open(a).extractall(t, filter="data"), archive, folder
                )
                gnu = timed(
                    lambda a, t: subprocess.run(["tar", "-xf", a, "-C", t], check=True),
                    archive,
                    folder,
                )
            print(
                f"{suffix:8} {ours:8.2f} {reference:10.2f} "
                f"{'-' if gnu is None else f'{gnu:.2f}':>10} {megabytes / ours:10.0f} "
                f"{ours / reference:13.2f} {'-' if gnu is None else f'{ours / gnu:.2f}':>9}"
            )
    print("(zip rows: the reference is zipfile.extractall, which checks nothing)")


if __name__ == "__main__":
    main()
