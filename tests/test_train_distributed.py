"""Training under MirroredStrategy (two logical CPUs) and MultiWorkerMirroredStrategy (two
local processes on 127.0.0.1)."""

import json
import socket
import subprocess
import sys

import pandas as pd
import pytest

from train_helpers import quiet_env, train_command, write_dataset

# `efficientdet` with the CPU split into two logical devices before TensorFlow starts.
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from efficientdet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def check_run(model_dir, done, steps):
    summary = json.loads(done.read_text())
    assert summary["global_step"] == steps
    assert (model_dir / "checkpoints" / f"ckpt-{steps}.index").is_file()
    history = pd.read_csv(model_dir / "history.csv")
    assert history["loss"].notna().all() and (history["loss"] > 0).all()


def test_mirrored_on_two_logical_cpus(tmp_path):
    data = write_dataset(tmp_path / "data", num_train=4, num_val=2)
    model_dir, done = tmp_path / "model", tmp_path / "done.json"
    command = train_command(
        data, model_dir, "--strategy=mirrored", f"--done={done}", epochs=1, batch_size=4, examples=8
    )
    result = subprocess.run(
        [sys.executable, "-c", TWO_CPUS, *command[1:]],
        capture_output=True,
        text=True,
        timeout=600,
        env=quiet_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy mirrored: 2 replicas" in result.stderr
    check_run(model_dir, done, steps=2)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_multi_worker_on_two_local_processes(tmp_path):
    data = write_dataset(tmp_path / "data", num_train=4, num_val=2)
    model_dir, done = tmp_path / "model", tmp_path / "done.json"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    command = train_command(
        data,
        model_dir,
        "--strategy=multi_worker",
        "--mode=traineval",
        f"--done={done}",
        epochs=2,
        batch_size=4,
        examples=8,
    )
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=quiet_env(TF_CONFIG=json.dumps(tf_config)),
            )
        )
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "strategy multi_worker: 2 replicas" in stderr
    check_run(model_dir, done, steps=4)
    # Only the chief keeps checkpoints; the other worker's scratch copy is gone.
    assert [path.name for path in model_dir.iterdir() if path.name.startswith(".")] == []
