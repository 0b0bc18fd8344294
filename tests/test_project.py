"""The project's own files: pins agree, the CLI lists every stage, config validates."""

import re
import subprocess

import tomllib
import yaml

from conftest import BIN, REPO


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _rules():
    return "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))


def _command_modules():
    from efficientdet.cli import COMMANDS

    return {
        command: REPO / "scripts" / "efficientdet" / stage / f"{command}.py"
        for command, (stage, _) in COMMANDS.items()
    }


def test_environment_yml_pins_match_pyproject():
    project = _pyproject()["project"]
    pinned = set(project["dependencies"])
    pinned |= set(project["optional-dependencies"]["cpu"])
    pinned |= set(project["optional-dependencies"]["slurm"])
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(
        item["pip"] for item in environment["dependencies"] if isinstance(item, dict)
    )
    assert set(pip_section) == pinned


def test_every_stage_has_one_name():
    """A command, its rule and its module share one name; every rule calls its own command."""
    modules = _command_modules()
    usage = subprocess.run(
        [str(BIN / "efficientdet"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    rule_commands = dict(
        re.findall(r"^(?:rule|checkpoint) (\w+):.*?efficientdet (\w+)", _rules(), flags=re.M | re.S)
    )
    for command, module in modules.items():
        assert command in usage
        assert module.exists(), command
    assert {rule: called for rule, called in rule_commands.items() if rule != called} == {}
    assert set(rule_commands) == set(modules)


def test_rules_pass_their_threads_on():
    """A command with a --threads option gets its rule's `threads:`: left to count the cores
    itself, it would take every core of a cluster node, whatever the job was given."""
    blocks = re.split(r"^(?=(?:rule|checkpoint) )", _rules(), flags=re.M)
    asking = {
        re.search(r"efficientdet (\w+)", block).group(1): block
        for block in blocks
        if re.search(r"^\s+threads:", block, flags=re.M)
    }
    modules = _command_modules()
    counting = [command for command in asking if '"--threads"' in modules[command].read_text()]
    assert {"unpack", "index"} <= set(counting)
    assert [command for command in counting if "--threads {threads}" not in asking[command]] == []
