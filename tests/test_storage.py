"""Remote storage with no shared file system, as on the cloud: `dataset.url: s3://...` and
`--default-storage-provider s3` against moto's S3 server on 127.0.0.1."""

import os
import socket
import subprocess
import time

import boto3
import pytest
import yaml

from conftest import BIN, SAMPLE_ZIP, run_snakemake
from efficientdet.data.tfrecord import parse_example, read_records

BUCKET = "efficientdet"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path_factory):
    """A fresh moto S3 server on 127.0.0.1, with an empty bucket."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(tmp_path_factory.mktemp("moto") / "moto.log", "w"), stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **KEYS)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.5)
    yield endpoint, client
    server.terminate()
    server.wait(timeout=30)


def bucket_keys(client, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", [])}


def test_data_stage_reads_and_writes_only_the_bucket(workdir, s3_endpoint, tmp_path_factory):
    endpoint, client = s3_endpoint
    client.upload_file(str(SAMPLE_ZIP), BUCKET, "inputs/sample-voc.zip")
    (workdir / "resources" / SAMPLE_ZIP.name).unlink()
    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["dataset"]["url"] = f"s3://{BUCKET}/inputs/sample-voc.zip"
    config_file.write_text(yaml.safe_dump(config))

    run_snakemake(
        workdir, "tfrecords", "dataset_stats",
        "--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/work",
        "--storage-s3-endpoint-url", endpoint, "--storage-s3-access-key", "testing",
        "--storage-s3-secret-key", "testing", "--shared-fs-usage", "none",
    )

    written = bucket_keys(client, "work/")
    shards = sorted(key for key in written if key.endswith(".tfrecord"))
    assert [key.split("/")[-1].split("-")[0] for key in shards] == ["train", "val"]
    for key in ("resources/datasets/sample.zip", "results/sample/annotations.csv",
                "results/sample/val_coco.json", "results/sample/stats/summary.yaml",
                "logs/sample/index.log"):
        assert key in written, key
    # Nothing but Snakemake's own state stays on the "worker".
    assert sorted(path.name for path in workdir.iterdir()) == [".snakemake", "config",
                                                               "resources"]
    assert not any((workdir / "resources").iterdir())

    local_copy = tmp_path_factory.mktemp("download") / "train.tfrecord"
    client.download_file(BUCKET, f"work/{shards[0]}", str(local_copy))
    examples = [parse_example(record) for record in read_records(local_copy)]
    assert examples and all(example["image/encoded"] for example in examples)
