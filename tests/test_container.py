"""The workers' image (Dockerfile): built with podman from a Debian base made by debootstrap
(.ci/container.sh, as root on Debian), then the data stage and one training epoch inside it.
Long (a 2.4 GB image): marked `container`, run with `pytest -m container`."""

import json
import subprocess

import pytest

from conftest import REPO

RUN = "sample-efficientdet-d0"


@pytest.mark.container
def test_image_runs_the_data_stage_and_one_epoch(tmp_path):
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "container.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "image built in" in result.stdout
    shards = sorted((tmp_path / "results" / "sample" / "tfrecords").glob("*.tfrecord"))
    assert [path.name.split("-")[0] for path in shards] == ["train", "val"]
    done = json.loads((tmp_path / "results" / RUN / "train.done.json").read_text())
    assert done["epochs"] == 1
    assert (
        tmp_path / "models" / RUN / "checkpoints" / f"ckpt-{done['global_step']}.index"
    ).is_file()
