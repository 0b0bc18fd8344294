"""profiles/slurm on a real SLURM cluster: the data stage runs as SLURM jobs and a gpu=1 rule is
given a GPU. CI starts a one-node cluster with a fake GPU first (`.ci/local_slurm.sh start`, in
.ci/run); without a cluster this module fails under CI=true and is skipped elsewhere."""

import json
import os
import shutil
import subprocess
import time

import pandas as pd
import pytest
import yaml

from conftest import BIN, REPO, run_snakemake

CLUSTER_SCRIPT = ".ci/local_slurm.sh"
SNAKEMAKE_SECONDS = 240

# The project's workflow plus one gpu=1 rule that records what SLURM gave its job.
GPU_PROBE_SNAKEFILE = f"""\
include: {str(REPO / "workflow" / "Snakefile")!r}


rule gpu_probe:
    output:
        "gpu_probe.txt",
    log:
        "logs/gpu_probe.log",
    resources:
        gpu=1,
        mem_mb=500,
        runtime=5,
    shell:
        "(printenv CUDA_VISIBLE_DEVICES; scontrol show job $SLURM_JOB_ID) > {{output}} 2> {{log}}"
"""


def _node_cpus():
    """CPUs of the cluster's first usable node, or None when no cluster answers."""
    if shutil.which("sinfo") is None:
        return None
    try:
        result = subprocess.run(
            ["sinfo", "--noheader", "--states=idle,mixed,allocated", "--format=%c"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return None
    cpus = result.stdout.split()
    return int(cpus[0]) if result.returncode == 0 and cpus else None


@pytest.fixture(scope="module")
def node_cpus():
    cpus = _node_cpus()
    if cpus is None:
        message = f"no SLURM cluster answers `sinfo`; as root, run `{CLUSTER_SCRIPT} start`"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    return cpus


def _slurm_command(workdir, snakefile, *targets, max_threads, seconds=SNAKEMAKE_SECONDS, extra=()):
    return [
        "timeout",
        "-k",
        "30",
        str(seconds),
        str(BIN / "snakemake"),
        "--snakefile",
        str(snakefile),
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        # For this small, idle cluster: poll after 1 s instead of 40 s, keep the job logs to
        # inspect them, and ask for no more CPUs than the node has.
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-keep-successful-logs",
        "--max-threads",
        str(max_threads),
        *targets,
        # After the targets: options of several values would take them.
        *extra,
    ]


def _run_on_slurm(workdir, snakefile, *targets, max_threads, seconds=SNAKEMAKE_SECONDS, extra=()):
    command = _slurm_command(
        workdir, snakefile, *targets, max_threads=max_threads, seconds=seconds, extra=extra
    )
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"snakemake on SLURM failed ({result.returncode}; 124 = timed out):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-10000:]}"
    )
    return result


def _slurm_jobs(workdir):
    """{SLURM job id: rule}, from the job logs .snakemake/slurm_logs/rule_NAME/.../ID.log."""
    logs = workdir / ".snakemake" / "slurm_logs"
    return {
        path.stem: path.relative_to(logs).parts[0].removeprefix("rule_")
        for path in logs.rglob("*.log")
    }


def _accounting(job_ids):
    """{job id: (job name, state, time limit, allocated TRES)} as `sacct` reports them."""
    result = subprocess.run(
        [
            "sacct",
            "--allocations",
            "--noheader",
            "--parsable2",
            f"--jobs={','.join(job_ids)}",
            "--format=JobID,JobName,State,Timelimit,AllocTRES",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = (line.split("|") for line in result.stdout.splitlines())
    return {job_id: tuple(fields) for job_id, *fields in rows}


def test_data_stage_runs_as_slurm_jobs_and_gpu_rule_gets_a_gpu(workdir, node_cpus):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(GPU_PROBE_SNAKEFILE)

    _run_on_slurm(workdir, snakefile, "tfrecords", "gpu_probe", max_threads=node_cpus)

    data = workdir / "results" / "sample"
    shards = sorted((data / "tfrecords").glob("*.tfrecord"))
    assert {path.name.split("-")[0] for path in shards} == {"train", "val"}
    assert all(path.stat().st_size > 0 for path in shards + [data / "val_coco.json"])

    jobs = _slurm_jobs(workdir)
    expected = ["unpack", "index", "split", "ground_truth", "gpu_probe"] + ["shard"] * len(shards)
    assert sorted(jobs.values()) == sorted(expected), "every job goes to SLURM"
    accounting = _accounting(jobs)
    assert sorted(accounting) == sorted(jobs)
    assert {state for _, state, _, _ in accounting.values()} == {"COMPLETED"}
    assert len({name for name, _, _, _ in accounting.values()}) == 1, "one run, one job name"
    with_gpu = {job_id for job_id, (*_, tres) in accounting.items() if "gres/gpu=1" in tres}
    assert [jobs[job_id] for job_id in with_gpu] == ["gpu_probe"]
    _, _, time_limit, tres = accounting[with_gpu.pop()]
    assert time_limit == "00:05:00" and "mem=500M" in tres.split(","), "runtime, mem_mb -> sbatch"

    visible_devices, job_details = (workdir / "gpu_probe.txt").read_text().split("\n", 1)
    assert visible_devices == "0"
    assert "TresPerJob=gres:gpu:1" in job_details, "the rule's gpu=1 must reach sbatch as --gpus=1"


# The whole workflow on SLURM: a tiny training run (2 steps per epoch).
RUN = "sample-efficientdet-d0"
GPU_RULES = {"train", "evaluate_checkpoint", "export"}
TRAIN_SECONDS = 600


def configure_tiny(workdir, **train):
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"].update(image_size=128, hparams={"learning_rate": 0.02, "lr_warmup_epoch": 0})
    config["train"].update(batch_size=2, examples_per_epoch=4, mode="train", **train)
    config["evaluate"]["max_samples"] = 4
    config["export"]["calibration_images"] = 4
    config["infer"]["batch_size"] = 2
    path.write_text(yaml.safe_dump(config))


@pytest.mark.long
def test_whole_dag_on_slurm_then_only_new_evaluations(workdir, node_cpus):
    configure_tiny(workdir, epochs=2)
    _run_on_slurm(
        workdir,
        REPO / "workflow" / "Snakefile",
        "predictions",
        "evaluate",
        max_threads=node_cpus,
        seconds=1500,
    )
    assert (workdir / "models" / RUN / "export" / "frozen_model.pb").is_file()
    assert (workdir / "results" / RUN / "predictions" / "detections.csv").is_file()
    assert sorted(
        path.name for path in (workdir / "results" / RUN / "eval").glob("ckpt-*.json")
    ) == ["ckpt-2.json", "ckpt-4.json"]

    jobs = _slurm_jobs(workdir)
    shards = len(list((workdir / "results" / "sample" / "tfrecords").glob("*.tfrecord")))
    # The metrics table is a local rule; every other job went through sbatch.
    assert sorted(jobs.values()) == sorted(
        ["unpack", "index", "split", "ground_truth", "dataset_stats", "train", "export", "infer"]
        + ["shard"] * shards
        + ["evaluate_checkpoint"] * 2
    )
    accounting = _accounting(jobs)
    assert {state for _, state, _, _ in accounting.values()} == {"COMPLETED"}
    for job_id, (*_, tres) in accounting.items():
        assert ("gres/gpu=1" in tres) == (jobs[job_id] in GPU_RULES), (jobs[job_id], tres)

    # One more epoch: training continues, and only its new checkpoint is evaluated.
    configure_tiny(workdir, epochs=3)
    before = set(jobs)
    _run_on_slurm(
        workdir, REPO / "workflow" / "Snakefile", "evaluate", max_threads=node_cpus, seconds=900
    )
    new_jobs = {
        job_id: rule for job_id, rule in _slurm_jobs(workdir).items() if job_id not in before
    }
    assert sorted(new_jobs.values()) == ["evaluate_checkpoint", "train"]
    evaluation_logs = workdir / ".snakemake" / "slurm_logs" / "rule_evaluate_checkpoint"
    new_evaluation = [
        path.parent.name for path in evaluation_logs.rglob("*.log") if path.stem in new_jobs
    ]
    assert new_evaluation == ["6"], "only ckpt-6 is new"


def _prepare_training(workdir, **train):
    """The data stage, run locally: these tests are about the train job."""
    configure_tiny(workdir, **train)
    run_snakemake(workdir, "tfrecords", "results/sample/stats/summary.yaml")


def _wait_for_state(job_id, prefix, seconds=120):
    deadline = time.monotonic() + seconds
    while not _accounting([job_id]).get(job_id, ("", ""))[1].startswith(prefix):
        assert time.monotonic() < deadline, f"job {job_id} never {prefix}"
        time.sleep(1)


@pytest.mark.slow
def test_cancelled_training_resumes_from_its_last_checkpoint(workdir, node_cpus):
    _prepare_training(workdir, epochs=30)
    checkpoints = workdir / "models" / RUN / "checkpoints"
    log_file = workdir.parent / f"{workdir.name}.out"
    with open(log_file, "w") as output:
        snakemake = subprocess.Popen(
            _slurm_command(
                workdir,
                REPO / "workflow" / "Snakefile",
                "train",
                "--retries",
                "0",
                max_threads=node_cpus,
                seconds=TRAIN_SECONDS,
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TRAIN_SECONDS
        while not list(checkpoints.glob("ckpt-4.index")) and time.monotonic() < deadline:
            assert snakemake.poll() is None, log_file.read_text()[-5000:]
            time.sleep(1)
        (train_job,) = _slurm_jobs(workdir)
        subprocess.run(["scancel", train_job], check=True, timeout=30)
        _wait_for_state(train_job, "CANCELLED")
        # Reported as failed: the plugin polls at most every 180 s.
        returncode = snakemake.wait(timeout=240)
    finally:
        snakemake.kill()
    assert returncode not in (0, 124), "snakemake did not report the cancelled job"
    assert f"SLURM-job '{train_job}' failed" in log_file.read_text()
    assert not (workdir / "results" / RUN / "train.done.json").exists()
    latest = max(int(path.stem.split("-")[1]) for path in checkpoints.glob("ckpt-*.index"))
    # Epochs logged by the killed job, plus the one it was in; none more when it was killed
    # after an epoch's history row but before its checkpoint (the row is written first).
    history = pd.read_csv(workdir / "models" / RUN / "history.csv")
    epochs_begun = len(history) + (0 if history["step"].iloc[-1] > latest else 1)
    configure_tiny(workdir, epochs=latest // 2 + 1)
    _run_on_slurm(
        workdir,
        REPO / "workflow" / "Snakefile",
        "train",
        max_threads=node_cpus,
        seconds=TRAIN_SECONDS,
    )
    log = (workdir / "logs" / RUN / "train.log").read_text()
    assert f"resuming from models/{RUN}/checkpoints/ckpt-{latest}" in log
    epochs_lost = epochs_begun - latest // 2
    print(
        f"scancel: {epochs_begun} epochs begun, resumed after epoch {latest // 2}: "
        f"{epochs_lost} lost"
    )
    assert epochs_lost <= 1


SLEEPER_SNAKEFILE = """\
rule sleeper:
    output:
        "slept.txt",
    log:
        "logs/sleeper.log",
    resources:
        runtime={runtime},
        mem_mb=200,
    shell:
        "sleep 600 && touch {{output}} 2> {{log}}"
"""


HOG_SNAKEFILE = """\
rule hog:
    output:
        "hogged.txt",
    log:
        "logs/hog.log",
    resources:
        mem_mb=200,
    shell:
        "python3 -c 'import time; data = b\\"x\\" * (800 << 20); time.sleep(120)' 2> {log}"
        " && touch {output}"
"""


@pytest.mark.long
def test_multi_worker_training_is_one_job_of_two_tasks(workdir, node_cpus):
    _prepare_training(workdir, epochs=2, strategy="multi_worker")
    # Two CPU tasks on the one node: srun starts them, SLURM's resolver finds the cluster.
    _run_on_slurm(
        workdir,
        REPO / "workflow" / "Snakefile",
        "train",
        max_threads=1,
        seconds=TRAIN_SECONDS,
        extra=[
            "--set-resources",
            "train:tasks=2",
            "train:mpi=srun",
            "train:gpu=0",
            "train:mem_mb=6000",
        ],
    )
    done = json.loads((workdir / "results" / RUN / "train.done.json").read_text())
    assert done["global_step"] == 4
    model_dir = workdir / "models" / RUN
    assert (model_dir / "checkpoints" / "ckpt-4.index").is_file()
    assert [path.name for path in model_dir.iterdir() if path.name.startswith(".")] == []
    log = (workdir / "logs" / RUN / "train.log").read_text()
    assert log.count("strategy multi_worker: 2 replicas") == 2, "two processes, one cluster"
    (job_id,) = _slurm_jobs(workdir)
    steps = subprocess.run(
        ["sacct", "--noheader", "--parsable2", f"--jobs={job_id}", "--format=JobID,NTasks,State"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert any(line.split("|")[1:] == ["2", "COMPLETED"] for line in steps), steps


# Requests the cluster refuses, and jobs it kills.
def _run_probe_on_slurm(workdir, *extra, seconds=SNAKEMAKE_SECONDS):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(GPU_PROBE_SNAKEFILE)
    command = _slurm_command(
        workdir,
        snakefile,
        "gpu_probe",
        max_threads=1,
        seconds=seconds,
        extra=["--retries", "0", *extra],
    )
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.parametrize(
    "request_, message",
    [
        (["--default-resources", "slurm_partition=no_such_partition"], "invalid partition"),
        (["--set-resources", "gpu_probe:gpu=8"], "Requested node configuration is not available"),
    ],
)
def test_a_request_the_cluster_refuses_fails_with_its_message(
    workdir, node_cpus, request_, message
):
    result = _run_probe_on_slurm(workdir, *request_)
    assert result.returncode not in (0, 124), result.stderr[-3000:]
    assert message in result.stdout + result.stderr
    assert not (workdir / "gpu_probe.txt").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "snakefile_text, rule, state, reason",
    [
        # SLURM's shortest limit is a minute, and the kill comes up to a minute later: `long`.
        pytest.param(
            SLEEPER_SNAKEFILE.format(runtime=1),
            "sleeper",
            "TIMEOUT",
            "DUE TO TIME LIMIT",
            marks=pytest.mark.long,
            id="time limit",
        ),
        # Without cgroups SLURM kills the step and reports FAILED; with them, OUT_OF_MEMORY.
        pytest.param(HOG_SNAKEFILE, "hog", "FAILED", "Exceeded job memory limit", id="memory"),
    ],
)
def test_a_job_the_cluster_kills_is_reported_with_its_log(
    workdir, node_cpus, snakefile_text, rule, state, reason
):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(snakefile_text)
    result = subprocess.run(
        _slurm_command(
            workdir, snakefile, rule, max_threads=1, seconds=400, extra=["--retries", "0"]
        ),
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode not in (0, 124), output[-3000:]
    assert f"SLURM status is: '{state}'" in output
    (job_log,) = (workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").glob("*.log")
    assert str(job_log) in output, "the error names the job's log"
    assert reason in job_log.read_text()
    assert not any(workdir.glob("*.txt")), "the killed job left its output"
