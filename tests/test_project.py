"""The project's own files: pins agree, the CLI lists every stage, config validates."""

import subprocess
import tomllib

import yaml

from conftest import BIN, REPO


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_environment_yml_pins_match_pyproject():
    project = _pyproject()["project"]
    pinned = set(project["dependencies"])
    pinned |= set(project["optional-dependencies"]["cpu"])
    pinned |= set(project["optional-dependencies"]["slurm"])
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert set(pip_section) == pinned


def test_cli_lists_every_stage_module():
    from efficientdet.cli import COMMANDS

    usage = subprocess.run(
        [str(BIN / "efficientdet"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in COMMANDS:
        assert command in usage
        assert (REPO / "scripts" / "efficientdet" / f"{command}.py").exists(), command
