"""`efficientdet train` end to end on tiny records: logs, resume after kill -9, NaN, bad data."""

import json
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from conftest import REFERENCE
from efficientdet import build_model, cli, flags, load_checkpoint
from efficientdet.errors import UserError
from efficientdet.train import train
from efficientdet.train.run import drop_unsaved_epochs
from train_helpers import LABEL_MAP, quiet_env, run_train, train_command, write_dataset

# Two images and batch 2 without augmentation: every step sees the same batch.
FIXED_BATCH = (
    "--hparams=optimizer=adam,learning_rate=0.064,lr_warmup_epoch=0,jitter_min=1.0,"
    "jitter_max=1.0,input_rand_hflip=false"
)


def checkpoint_steps(model_dir):
    return sorted(
        int(path.stem.split("-")[1]) for path in (model_dir / "checkpoints").glob("ckpt-*.index")
    )


def latest_checkpoint(model_dir):
    state = (model_dir / "checkpoints" / "checkpoint").read_text()
    return yaml.safe_load(state)["model_checkpoint_path"]


def wait_for_checkpoint(model_dir, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (model_dir / "checkpoints" / "checkpoint").exists() and checkpoint_steps(model_dir):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    raise AssertionError("no checkpoint appeared")


def test_kill_resume_and_nan(tmp_path):
    data = write_dataset(tmp_path / "data", num_train=2, num_val=2)
    model_dir = tmp_path / "model"
    done = tmp_path / "done.json"

    # 1. A run of many epochs from the official d0 checkpoint where ../shared/reference has
    #    one (90 classes: its class head is not loaded), killed with SIGKILL once it has
    #    written a checkpoint.
    official = REFERENCE / "automl-efficientdet-d0"
    pretrained = [f"--pretrained_ckpt={official}"] if official.exists() else []
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as stderr:
        first = subprocess.Popen(
            train_command(data, model_dir, "--mode=traineval", FIXED_BATCH, *pretrained, epochs=50),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=quiet_env(),
        )
        try:
            wait_for_checkpoint(model_dir, first)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    if pretrained:
        assert "skipped 2 head weights of another shape" in first_log.read_text()
        assert "initialised from" in first_log.read_text()
    steps_at_kill = checkpoint_steps(model_dir)
    assert steps_at_kill and steps_at_kill[-1] % 2 == 0

    # 2. The rerun resumes from the latest checkpoint and finishes; 2 steps per epoch.
    epochs = steps_at_kill[-1] // 2 + 2
    result = run_train(
        train_command(
            data, model_dir, "--mode=traineval", FIXED_BATCH, f"--done={done}", epochs=epochs
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {model_dir}/checkpoints/ckpt-{steps_at_kill[-1]}" in result.stderr
    summary = json.loads(done.read_text())
    assert summary["global_step"] == 2 * epochs
    assert summary["epochs"] == epochs
    assert summary["checkpoint"].endswith(f"ckpt-{2 * epochs}")
    assert checkpoint_steps(model_dir)[-2:] == [2 * epochs - 2, 2 * epochs]

    history = pd.read_csv(model_dir / "history.csv")
    assert list(history["epoch"]) == list(range(epochs))
    assert list(history["step"]) == [2 * (epoch + 1) for epoch in range(epochs)]
    for column in ("loss", "class_loss", "box_loss", "l2_loss", "learning_rate", "val_loss"):
        assert np.isfinite(history[column]).all(), column
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]  # one batch, learnt
    assert list((model_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((model_dir / "logs" / "validation").glob("events.out.tfevents.*"))
    description = yaml.safe_load((model_dir / "model.yaml").read_text())
    assert description["model_name"] == "efficientdet-d0"
    assert description["image_size"] == [128, 128]
    assert description["label_map"] == LABEL_MAP
    assert description["config"]["max_instances_per_image"] == 2
    assert description["optimization"]["optimizer"] == "adam"

    # Evaluation and export load the weight average.
    model = build_model("efficientdet-d0", num_classes=3, image_size=128)
    load_checkpoint(model, str(model_dir / "checkpoints"))
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / latest_checkpoint(model_dir)))
    averaged = sorted(
        (tuple(shape), round(float(np.sum(reader.get_tensor(name))), 3))
        for name, shape in reader.get_variable_to_shape_map().items()
        if name.startswith("ema_model/")
    )
    loaded = sorted((tuple(w.shape), round(float(np.sum(w.numpy())), 3)) for w in model.weights)
    assert loaded == averaged

    # 3. A diverging continuation stops with a clear message and writes no checkpoint.
    last_good = latest_checkpoint(model_dir)
    result = run_train(
        train_command(data, model_dir, FIXED_BATCH.replace("0.064", "1e30"), epochs=epochs + 3)
    )
    assert result.returncode == 1
    assert "training diverged" in result.stderr
    assert f"the last good one is {model_dir}/checkpoints/{last_good}" in result.stderr
    assert latest_checkpoint(model_dir) == last_good
    assert checkpoint_steps(model_dir)[-1] == 2 * epochs


def train_in_process(command):
    _, parser = cli.stage_parser("train")
    return train.train(flags.parse_args(parser, command[2:]))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch_size=4"], "has 2 images, fewer than the batch size 4"),
        (
            ["--mode=traineval", "--val_file_pattern={data}/tfrecords/none-*.tfrecord"],
            "no file matches",
        ),
        (
            ["--mode=traineval", "--val_file_pattern={data}/tfrecords/empty.tfrecord"],
            "validation split is empty",
        ),
        (["--hparams=learning_rat=0.1"], "unknown key"),
        (["--dataset_stats={data}/missing.yaml"], "missing.yaml: file not found"),
    ],
)
def test_unusable_data_or_settings(tmp_path, extra, message):
    data = write_dataset(tmp_path / "data", num_train=2, num_val=2)
    (data / "tfrecords" / "empty.tfrecord").write_bytes(b"")
    command = train_command(data, tmp_path / "model", batch_size=2)
    command += [flag.format(data=data) for flag in extra]
    with pytest.raises(UserError, match=re.escape(message)):
        train_in_process(command)
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_label_map_mismatch_refuses_to_resume(tmp_path):
    data = write_dataset(tmp_path / "data", num_train=2, num_val=2)
    model_dir = tmp_path / "model"
    (model_dir / "checkpoints").mkdir(parents=True)
    (model_dir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    (model_dir / "checkpoints" / "ckpt-2.index").write_bytes(b"")
    recorded = {
        "model_name": "efficientdet-d0",
        "image_size": [128, 128],
        "label_map": {1: "cat", 2: "dog", 3: "bird"},
    }
    (model_dir / "model.yaml").write_text(yaml.safe_dump(recorded))
    with pytest.raises(
        UserError, match="model.yaml: the checkpoints of this run were trained with label_map"
    ):
        train_in_process(train_command(data, model_dir))


def test_history_rows_without_checkpoint_are_dropped_on_resume(tmp_path):
    path = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.0], "step": [2, 4, 6]}).to_csv(
        path, index=False
    )
    drop_unsaved_epochs(path, 4)
    assert list(pd.read_csv(path)["step"]) == [2, 4]
    drop_unsaved_epochs(path, 4)
    assert list(pd.read_csv(path)["epoch"]) == [0, 1]
