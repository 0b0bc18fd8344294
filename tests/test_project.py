"""The project's own files: pins agree, the CLI lists every stage, config validates."""

import re
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
    pip_section = next(
        item["pip"] for item in environment["dependencies"] if isinstance(item, dict)
    )
    assert set(pip_section) == pinned


def test_every_stage_has_one_name():
    """A command, its rule and its module share one name; every rule calls its own command."""
    from efficientdet.cli import COMMANDS

    usage = subprocess.run(
        [str(BIN / "efficientdet"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    rule_commands = dict(
        re.findall(r"^(?:rule|checkpoint) (\w+):.*?efficientdet (\w+)", rules, flags=re.M | re.S)
    )
    for command, (stage, _) in COMMANDS.items():
        assert command in usage
        assert (REPO / "scripts" / "efficientdet" / stage / f"{command}.py").exists(), command
    assert {rule: called for rule, called in rule_commands.items() if rule != called} == {}
    assert set(rule_commands) == set(COMMANDS)


def test_rules_pass_their_threads_on():
    """A command with a --threads option gets its rule's `threads:`: left to count the cores
    itself, it would take every core of a cluster node, whatever the job was given."""
    rules = "".join(path.read_text() for path in (REPO / "workflow" / "rules").glob("*.smk"))
    blocks = re.split(r"^(?=(?:rule|checkpoint) )", rules, flags=re.M)
    asking = {
        re.search(r"efficientdet (\w+)", block).group(1): block
        for block in blocks
        if re.search(r"^\s+threads:", block, flags=re.M)
    }
    from efficientdet.cli import COMMANDS

    modules = {command: f"{stage}/{command}.py" for command, (stage, _) in COMMANDS.items()}
    counting = [
        command
        for command in asking
        if '"--threads"' in (REPO / "scripts" / "efficientdet" / modules[command]).read_text()
    ]
    assert {"unpack", "index"} <= set(counting)
    assert [command for command in counting if "--threads {threads}" not in asking[command]] == []
