"""Lint and format checks: Snakemake's linter, snakefmt, ruff (configured in pyproject.toml)."""

import re
import subprocess

import pytest

from conftest import BIN, REPO

# Rules run the `efficientdet` command of the environment Snakemake runs in (README, Usage);
# per-rule conda environments are not part of the workflow yet.
ALLOWED_LINTS = {"Specify a conda environment or container for each rule."}


def run(*command):
    return subprocess.run(
        [str(BIN / command[0]), *map(str, command[1:])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_snakemake_lint_finds_nothing_but_the_allowed():
    result = run("snakemake", "--lint", "--snakefile", REPO / "workflow" / "Snakefile")
    output = result.stdout + result.stderr
    lints = set(re.findall(r"^\s+\* (.+?):?$", output, re.MULTILINE))
    assert result.returncode == 0 or lints, output  # a failure of the linter itself
    assert lints <= ALLOWED_LINTS, output


@pytest.mark.parametrize(
    "command",
    [
        ("snakefmt", "--check", "workflow"),
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
    ],
    ids=["snakefmt", "ruff-check", "ruff-format"],
)
def test_clean(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr
