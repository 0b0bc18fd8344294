"""Remote storage with no shared file system, as on the cloud: `dataset.url: s3://...` and
`--default-storage-provider s3` against moto's S3 server on 127.0.0.1; the cloud profile
(Google Batch + gs://) planned against a GCS emulator on 127.0.0.1."""

import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import threading
import time

import boto3
import pytest
import yaml

from conftest import BIN, REPO, SAMPLE_ZIP, run_cli, run_snakemake
from efficientdet.data.tfrecord import parse_example, read_records
from efficientdet.errors import UserError
from efficientdet.train import state_storage

BUCKET = "efficientdet"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
KEYS_SETTINGS = {"access_key": "testing", "secret_key": "testing"}


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
        stdout=open(tmp_path_factory.mktemp("moto") / "moto.log", "w"),
        stderr=subprocess.STDOUT,
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


class Outage:
    """A TCP relay to a server that a test can take away and bring back (on the same port), as
    when the storage service goes down mid-run: connections are refused, open ones cut."""

    def __init__(self, port):
        self.port, self.target = free_port(), port
        self.listener, self.connections = None, []
        self.up()

    def up(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self):
        self.listener.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.connections += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def assert_only_in_bucket(written, workdir, *keys):
    """`keys` are among the `written` keys, and nothing but Snakemake's own state stays in
    the working directory (the "worker")."""
    assert set(keys) - written == set()
    assert sorted(path.name for path in workdir.iterdir()) == [".snakemake", "config", "resources"]
    assert not any((workdir / "resources").iterdir())


def _use_bucket_archive(workdir, client):
    client.upload_file(str(SAMPLE_ZIP), BUCKET, "inputs/sample-voc.zip")
    (workdir / "resources" / SAMPLE_ZIP.name).unlink()
    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["dataset"]["url"] = f"s3://{BUCKET}/inputs/sample-voc.zip"
    config_file.write_text(yaml.safe_dump(config))


def _s3_options(endpoint):
    return (
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        f"s3://{BUCKET}/work",
        "--storage-s3-endpoint-url",
        endpoint,
        "--storage-s3-access-key",
        "testing",
        "--storage-s3-secret-key",
        "testing",
        "--shared-fs-usage",
        "none",
    )


def test_data_stage_reads_and_writes_only_the_bucket(workdir, s3_endpoint, tmp_path_factory):
    endpoint, client = s3_endpoint
    _use_bucket_archive(workdir, client)

    run_snakemake(workdir, "tfrecords", "dataset_stats", *_s3_options(endpoint))

    written = bucket_keys(client, "work/")
    shards = sorted(key for key in written if key.endswith(".tfrecord"))
    assert [key.split("/")[-1].split("-")[0] for key in shards] == ["train", "val"]
    assert_only_in_bucket(
        written,
        workdir,
        "resources/datasets/sample/sample-voc.zip",
        "results/sample/annotations.csv",
        "results/sample/val_coco.json",
        "results/sample/stats/summary.yaml",
        "logs/sample/index.log",
    )

    local_copy = tmp_path_factory.mktemp("download") / "train.tfrecord"
    client.download_file(BUCKET, f"work/{shards[0]}", str(local_copy))
    examples = [parse_example(record) for record in read_records(local_copy)]
    assert examples and all(example["image/encoded"] for example in examples)


@pytest.fixture(params=["s3", "gcs"])
def state_bucket(request, monkeypatch):
    """(url of a model_dir in a bucket, keys under it): S3 on moto, GCS on its emulator, each
    through its Snakemake storage plugin as `efficientdet train --state_url` uses it."""
    if request.param == "s3":
        endpoint, client = request.getfixturevalue("s3_endpoint")
        settings = {"endpoint_url": endpoint, **KEYS_SETTINGS}
        url = f"s3://{BUCKET}/work/models/run"

        def keys():
            return bucket_keys(client, "work/models/run/")

    else:
        endpoint, bucket = request.getfixturevalue("gcs_endpoint")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        settings = {"project": "test"}
        url = f"gs://{CLOUD_BUCKET}/work/models/run"

        def keys():
            prefix = "work/models/run/"
            return {blob.name.removeprefix(prefix) for blob in bucket.list_blobs(prefix=prefix)}

    described = {"provider": request.param, "settings": settings}
    monkeypatch.setenv(state_storage.ENVIRONMENT, json.dumps(described))
    return url, keys


def test_state_storage_mirrors_a_model_dir(state_bucket, tmp_path):
    url, stored_keys = state_bucket
    trained = tmp_path / "trained"
    (trained / "left-by-an-earlier-job").mkdir(parents=True)
    stored = state_storage.StateStorage(trained, url, state_storage.storage_provider())
    stored.pull()  # nothing stored yet: the run starts afresh
    assert not any(trained.iterdir())
    for name in ("model.yaml", "checkpoints/ckpt-2.index", "checkpoints/ckpt-4.index"):
        (trained / name).parent.mkdir(parents=True, exist_ok=True)
        (trained / name).write_text(name)
    (trained / ".worker-1").mkdir()
    (trained / ".worker-1" / "ckpt-4.index").write_text("a worker's scratch copy")
    stored.push()
    (trained / "checkpoints" / "ckpt-2.index").unlink()
    (trained / "model.yaml").write_text("changed")
    stored.push()
    assert stored_keys() == {".stored-files.json", "model.yaml", "checkpoints/ckpt-4.index"}

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "stale").mkdir(parents=True)
    state_storage.StateStorage(elsewhere, url, state_storage.storage_provider()).pull()
    pulled = {path.relative_to(elsewhere).as_posix() for path in elsewhere.rglob("*")}
    assert pulled == {".stored-files.json", "model.yaml", "checkpoints", "checkpoints/ckpt-4.index"}
    assert (elsewhere / "model.yaml").read_text() == "changed"


def test_state_storage_out_of_reach_is_named(tmp_path, monkeypatch):
    settings = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "retries": 0}
    described = {"provider": "s3", "settings": {**settings, **KEYS_SETTINGS}}
    monkeypatch.setenv(state_storage.ENVIRONMENT, json.dumps(described))
    url = f"s3://{BUCKET}/work/models/run"
    stored = state_storage.StateStorage(tmp_path / "run", url, state_storage.storage_provider())
    with pytest.raises(UserError, match=f"^{url}: cannot fetch the run's state"):
        stored.pull()


def test_state_url_without_the_workflows_storage_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(state_storage.ENVIRONMENT, raising=False)
    result = run_cli("train", f"--model_dir={tmp_path}", "--state_url=s3://bucket/run", check=False)
    assert result.returncode != 0
    assert f"--state_url needs the environment variable {state_storage.ENVIRONMENT}" in (
        result.stderr
    )


@pytest.mark.slow
def test_whole_workflow_keeps_everything_in_the_bucket(workdir, s3_endpoint):
    """Training, every evaluation, export and inference with no shared file system: the training
    state lives in the bucket, so more epochs resume from it and evaluate only the new one."""
    endpoint, client = s3_endpoint
    _use_bucket_archive(workdir, client)
    tiny = {
        "model": {"name": "efficientdet-d0", "image_size": 128, "pretrained": None, "hparams": {}},
        "train": {"epochs": 2, "batch_size": 4, "examples_per_epoch": 8, "run": "tiny"},
        "export": {"checkpoint": "best", "calibration_images": 2},
        "infer": {"backend": "tflite_fp32"},
    }
    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    for section, values in tiny.items():
        config[section].update(values)
    config_file.write_text(yaml.safe_dump(config))

    run_snakemake(workdir, *_s3_options(endpoint), timeout=1800)

    written = bucket_keys(client, "work/")
    evaluations = {key for key in written if re.fullmatch(r"results/tiny/eval/ckpt-\d+\.json", key)}
    assert evaluations == {"results/tiny/eval/ckpt-2.json", "results/tiny/eval/ckpt-4.json"}
    assert_only_in_bucket(
        written,
        workdir,
        "models/tiny/model.yaml",
        "models/tiny/history.csv",
        "models/tiny/checkpoints/ckpt-4.index",
        "models/tiny/export/frozen_model.pb",
        "models/tiny/export/metadata.json",
        "results/tiny/train.done.json",
        "results/tiny/training_curves.png",
        "results/tiny/eval/metrics.csv",
        "results/tiny/export/formats.csv",
        "results/tiny/predictions/detections.csv",
        "logs/tiny/train.log",
    )

    config["train"]["epochs"] = 3
    config_file.write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "evaluate", *_s3_options(endpoint), timeout=1800)
    ran = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", result.stdout + result.stderr, re.M)
    assert sorted(ran) == ["evaluate", "evaluate_checkpoint", "train"], ran
    log = client.get_object(Bucket=BUCKET, Key="work/logs/tiny/train.log")["Body"].read().decode()
    local_copy = ".snakemake/storage/s3/efficientdet/work/models/tiny"
    assert f"{local_copy}: retrieved the run's state" in log
    assert f"resuming from {local_copy}/checkpoints/ckpt-4 (epoch 2, step 4)" in log
    assert "results/tiny/eval/ckpt-6.json" in bucket_keys(client, "work/")


@pytest.mark.slow
def test_storage_going_away_fails_the_run_and_a_rerun_loses_nothing(workdir, s3_endpoint):
    endpoint, client = s3_endpoint
    _use_bucket_archive(workdir, client)
    outage = Outage(int(endpoint.rsplit(":", 1)[1]))
    options = ("tfrecords", *_s3_options(f"http://127.0.0.1:{outage.port}"))
    log_file = workdir.parent / f"{workdir.name}.out"
    with open(log_file, "w") as output:
        snakemake = subprocess.Popen(
            [str(BIN / "snakemake"), "--snakefile", str(REPO / "workflow" / "Snakefile")]
            + ["--directory", str(workdir), "--cores", "2", *options],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Snakemake says a job finished only once its outputs are in the bucket and recorded
        # complete; an outage during the upload would rightly leave them incomplete.
        deadline = time.monotonic() + 300
        while not re.search(r"Finished jobid: \d+ \(Rule: split\)", log_file.read_text()):
            assert snakemake.poll() is None, log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "the split never finished"
            time.sleep(0.2)
        assert "results/sample/splits/train.txt" in bucket_keys(client, "work/")
        outage.down()
        returncode = snakemake.wait(timeout=600)
    finally:
        snakemake.kill()
    assert returncode != 0, "the run went on without its storage"

    outage.up()
    # A shard job that the outage caught between upload and record is incomplete: it reruns.
    result = run_snakemake(workdir, *options, "--rerun-incomplete")
    output = result.stdout + result.stderr
    rerun = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", output, re.M))
    assert rerun and not rerun & {"download", "unpack", "index", "split"}, rerun
    shards = {key for key in bucket_keys(client, "work/") if key.endswith(".tfrecord")}
    assert sorted(key.split("/")[-1].split("-")[0] for key in shards) == ["train", "val"]


@pytest.fixture
def gcs_endpoint(tmp_path_factory):
    """A fresh GCS emulator on 127.0.0.1 holding the cloud profile's bucket."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = subprocess.Popen(
        [
            str(BIN / "gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ],
        stdout=open(tmp_path_factory.mktemp("gcs") / "gcs.log", "w"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            bucket = client.create_bucket(CLOUD_BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.5)
    yield endpoint, bucket
    server.terminate()
    server.wait(timeout=30)


CLOUD_PROFILE = REPO / "profiles" / "cloud" / "config.yaml"
CLOUD_BUCKET = "YOUR-BUCKET"


def test_cloud_profile_keys_are_the_plugins_options():
    from snakemake_executor_plugin_googlebatch import ExecutorSettings

    profile = yaml.safe_load(CLOUD_PROFILE.read_text())
    usage = subprocess.run(
        [str(BIN / "snakemake"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for key in profile:
        if key != "set-resources":
            assert f"--{key}" in usage, f"profiles/cloud: {key} is no snakemake option"
    settings = {field.name for field in dataclasses.fields(ExecutorSettings)}
    for rule, resources in profile["set-resources"].items():
        for name in resources:
            assert name == "nvidia_gpu" or name.removeprefix("googlebatch_") in settings, name
        assert rule in ("train", "evaluate_checkpoint", "export"), rule


def test_cloud_profile_plans_the_workflow_on_its_bucket(workdir, gcs_endpoint):
    endpoint, bucket = gcs_endpoint
    bucket.blob("inputs/sample-voc.zip").upload_from_filename(str(SAMPLE_ZIP))
    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["dataset"]["url"] = f"gs://{CLOUD_BUCKET}/inputs/sample-voc.zip"
    config_file.write_text(yaml.safe_dump(config))
    # Google's client talks to the emulator, anonymously, when this variable is set.
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    try:
        result = run_snakemake(
            workdir, "frozen_model", "--dry-run", "--profile", CLOUD_PROFILE.parent
        )
    finally:
        del os.environ["STORAGE_EMULATOR_HOST"]
    prefix = f"gs://{CLOUD_BUCKET}/efficientdet"
    assert f"{prefix}/results/sample/annotations.csv (send to storage)" in result.stdout
    assert f"gs://{CLOUD_BUCKET}/inputs/sample-voc.zip (retrieve from storage)" in result.stdout
    assert re.search(r"^train\s+1$", result.stdout, re.M)
