"""`snakemake --profile local|slurm|cloud` verbatim after `make profiles`, and the local
profile's GPU counter."""

import os
import subprocess

import pytest

from conftest import BIN, REPO

PROFILES = ("local", "slurm", "cloud")

# The project's workflow plus two gpu=1 jobs that record when they ran.
GPU_JOBS_SNAKEFILE = f"""\
include: {str(REPO / "workflow" / "Snakefile")!r}


rule gpu_jobs:
    input:
        expand("gpu_job_{{index}}.txt", index=(1, 2)),


rule gpu_job:
    output:
        "gpu_job_{{index}}.txt",
    log:
        "logs/gpu_job_{{index}}.log",
    resources:
        gpu=1,
    shell:
        "(date +%s.%N; sleep 2; date +%s.%N) > {{output}} 2> {{log}}"
"""


@pytest.fixture
def config_home(tmp_path):
    """XDG_CONFIG_HOME of a user who ran `make profiles`."""
    home = tmp_path / "xdg"
    subprocess.run(
        ["make", "-C", str(REPO), "profiles"],
        check=True,
        capture_output=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(home)},
    )
    return home


def snakemake(workdir, config_home, *args, snakefile=REPO / "workflow" / "Snakefile"):
    """snakemake run from `workdir` (as from the project root: no --directory)."""
    return subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(snakefile), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "XDG_CONFIG_HOME": str(config_home)},
    )


@pytest.mark.parametrize("name", ("local", "slurm"))
def test_named_profile_found_after_make_profiles(workdir, config_home, name):
    assert (config_home / "snakemake" / name).resolve() == REPO / "profiles" / name
    result = snakemake(workdir, config_home, "--profile", name, "--dry-run", "frozen_model")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Using profile {name} for setting default command line arguments" in result.stderr
    assert "train" in result.stdout


def test_make_profiles_leaves_a_users_own_profile_alone(tmp_path):
    own = tmp_path / "snakemake" / "slurm"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("jobs: 1\n")
    result = subprocess.run(
        ["make", "-C", str(REPO), "profiles"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert f"{own} exists and is not a link" in result.stderr
    assert (own / "config.yaml").read_text() == "jobs: 1\n"


def gpu_job_intervals(workdir):
    return [
        tuple(map(float, (workdir / f"gpu_job_{index}.txt").read_text().split()))
        for index in (1, 2)
    ]


def test_local_profile_runs_one_gpu_job_at_a_time(workdir, config_home):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(GPU_JOBS_SNAKEFILE)
    # Two cores, two gpu=1 jobs: the profile's gpu: 1 makes them take turns.
    result = snakemake(
        workdir, config_home, "--profile", "local", "--cores", "2", "gpu_jobs", snakefile=snakefile
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (start_1, end_1), (start_2, end_2) = sorted(gpu_job_intervals(workdir))
    assert end_1 <= start_2

    # The same jobs with two GPUs run side by side, so the check above can tell.
    result = snakemake(
        workdir,
        config_home,
        "gpu_jobs",
        "--profile",
        "local",
        "--cores",
        "2",
        "--forceall",
        "--resources",
        "gpu=2",
        snakefile=snakefile,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (start_1, end_1), (start_2, end_2) = sorted(gpu_job_intervals(workdir))
    assert start_2 < end_1
