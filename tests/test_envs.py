"""envs/: one Conda environment per kind of job, with pyproject's pins, on every rule (that every
rule has one is Snakemake's lint, tests/test_lint.py). Conda is not available here, so the long
test builds a plain venv from each file's packages and runs that environment's rules in it."""

import os
import shutil
import subprocess
import sys

import pytest
import tomllib
import yaml

from conftest import REPO, run_snakemake

RUN = "sample-efficientdet-d0"
SOURCE_LINE = "-e ${EFFICIENTDET_SOURCE}"


def pip_section(name):
    environment = yaml.safe_load((REPO / "envs" / f"{name}.yaml").read_text())
    return next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))


def test_envs_carry_pyprojects_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base, extras = set(project["dependencies"]), project["optional-dependencies"]
    expected = {
        "data": base,
        "model": base | set(extras["cpu"]) | set(extras["onnx"]),
        "model-cuda": base | set(extras["gpu"]) | set(extras["onnx"]),
    }
    for name, pins in expected.items():
        packages = pip_section(name)
        assert packages[-1] == SOURCE_LINE, f"envs/{name}.yaml must install the project last"
        assert set(packages[:-1]) == pins, name
    assert not any(pin.startswith("tensorflow") for pin in pip_section("data"))


def build_venv(folder, name):
    """A venv holding exactly the pip packages of envs/{name}.yaml (the project editable)."""
    requirements = folder / f"{name}.txt"
    requirements.write_text("\n".join(pip_section(name)) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(folder / name)], check=True)
    python = folder / name / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        check=True,
        env={**os.environ, "EFFICIENTDET_SOURCE": str(REPO)},
        timeout=1800,
    )
    return folder / name / "bin"


def run_in(environment_bin, workdir, *targets):
    """Snakemake (this venv's) with the jobs' `efficientdet` taken from `environment_bin`."""
    path = f"{environment_bin}{os.pathsep}{os.environ['PATH']}"
    previous = os.environ["PATH"]
    os.environ["PATH"] = path
    try:
        return run_snakemake(workdir, *targets, "--printshellcmds")
    finally:
        os.environ["PATH"] = previous


def imports(environment_bin, module):
    return (
        subprocess.run(
            [str(environment_bin / "python"), "-c", f"import {module}"],
            capture_output=True,
        ).returncode
        == 0
    )


@pytest.mark.long
def test_each_environment_runs_its_rules(tmp_path_factory, workdir):
    venvs = tmp_path_factory.mktemp("venvs")
    data_bin = build_venv(venvs, "data")
    assert not imports(data_bin, "tensorflow"), "the data environment must not hold TensorFlow"
    assert imports(data_bin, "efficientdet.data.shard")
    assert shutil.which("efficientdet", path=str(data_bin)) == str(data_bin / "efficientdet")

    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["model"].update(image_size=128, hparams={"learning_rate": 0.02, "lr_warmup_epoch": 0})
    config["train"].update(batch_size=2, examples_per_epoch=4, mode="train", epochs=1)
    config["evaluate"]["max_samples"] = 4
    config["export"]["calibration_images"] = 4
    config_file.write_text(yaml.safe_dump(config))

    run_in(data_bin, workdir, "tfrecords", "dataset_stats", "inspect")
    assert sorted((workdir / "results/sample/tfrecords").glob("*.tfrecord"))
    assert list((workdir / "results/sample/inspect/val").iterdir())

    model_bin = build_venv(venvs, "model")
    assert imports(model_bin, "tensorflow") and imports(model_bin, "tf2onnx")
    run_in(model_bin, workdir, "predictions")
    assert (workdir / "models" / RUN / "export" / "frozen_model.pb").is_file()
    assert (workdir / "results" / RUN / "predictions" / "detections.csv").is_file()
    # The metrics table belongs to the data environment.
    run_in(data_bin, workdir, "evaluate")
    assert (workdir / "results" / RUN / "eval" / "metrics.csv").is_file()
