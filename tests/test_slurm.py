"""profiles/slurm on a real SLURM cluster: the data stage runs as SLURM jobs and a gpu=1 rule is
given a GPU. CI starts a one-node cluster with a fake GPU first (`.ci/local_slurm.sh start`, in
.ci/run); without a cluster this module fails under CI=true and is skipped elsewhere."""

import os
import shutil
import subprocess

import pytest

from conftest import BIN, REPO

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
            capture_output=True, text=True, timeout=20,
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


def _run_on_slurm(workdir, snakefile, *targets, max_threads):
    command = [
        "timeout", "-k", "30", str(SNAKEMAKE_SECONDS),
        str(BIN / "snakemake"),
        "--snakefile", str(snakefile),
        "--directory", str(workdir),
        "--workflow-profile", str(REPO / "profiles" / "slurm"),
        # For this small, idle cluster: poll after 1 s instead of 40 s, keep the job logs to
        # inspect them, and ask for no more CPUs than the node has.
        "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-keep-successful-logs",
        "--max-threads", str(max_threads),
        *targets,
    ]
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
        ["sacct", "--allocations", "--noheader", "--parsable2", f"--jobs={','.join(job_ids)}",
         "--format=JobID,JobName,State,Timelimit,AllocTRES"],
        capture_output=True, text=True, check=True, timeout=30,
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
    assert sorted(jobs.values()) == sorted(expected), "all but `download` (local) go to SLURM"
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
