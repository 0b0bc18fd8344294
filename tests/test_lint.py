"""Lint and format checks: Snakemake's linter, snakefmt, ruff (configured in pyproject.toml)."""

import re
import subprocess

import pytest

from conftest import BIN, REPO


def run(*command):
    return subprocess.run(
        [str(BIN / command[0]), *map(str, command[1:])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_snakemake_lint_is_clean():
    result = run("snakemake", "--lint", "--snakefile", REPO / "workflow" / "Snakefile")
    output = result.stdout + result.stderr
    lints = set(re.findall(r"^\s+\* (.+?):?$", output, re.MULTILINE))
    assert result.returncode == 0 and not lints, output


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
