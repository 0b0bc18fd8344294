"""The original tool's command line: flags, @params files, environment variables, --hparams."""

import glob
from pathlib import Path

import pytest

from conftest import SAMPLE_ZIP
from efficientdet import cli, flags
from efficientdet.data.tfrecord import read_records
from efficientdet.errors import UserError
from efficientdet.train import url_dataset


def parse(argv, monkeypatch, env=None):
    for name in (
        "url_dataset",
        "backbone_ref",
        "num_epochs",
        "batch_size",
        "model_ckpts",
        "num_examples_per_epoch",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    _, parser = cli.stage_parser("train")
    return flags.parse_args(parser, [str(arg) for arg in argv])


def test_defaults_are_the_original_tools(monkeypatch):
    options = parse([], monkeypatch)
    assert options.mode == "train"
    assert options.model_name == "efficientdet-d0"
    assert options.batch_size == 64
    assert options.num_epochs is None  # as the original: the hparams' num_epochs, else 300
    assert options.profile is False
    assert options.strategy == "default"


def test_flag_beats_file_beats_environment(tmp_path, monkeypatch):
    params = tmp_path / "params.config"
    params.write_text(
        "# a comment line\n"
        "--num_epochs=7\n"
        "\n"
        "--batch_size=4\n"
        "--model_name=efficientdet-lite0  # trailing comment\n"
        "--profile\n"
    )
    env = {
        "num_epochs": "11",
        "batch_size": "3",
        "backbone_ref": "efficientdet-d1",
        "model_ckpts": "/ckpt/efficientdet-d1",
        "num_examples_per_epoch": "40",
        "url_dataset": "https://host/data.zip",
    }
    # The flag stands before the file on purpose: position does not matter.
    options = parse(["--batch_size=2", f"@{params}"], monkeypatch, env)
    assert options.batch_size == 2  # flag > file > env
    assert options.num_epochs == 7  # file > env
    assert options.model_name == "efficientdet-lite0"  # file > env backbone_ref
    assert options.pretrained_ckpt == "/ckpt/efficientdet-d1"  # env model_ckpts
    assert options.num_examples_per_epoch == 40
    assert options.url_dataset == "https://host/data.zip"
    assert options.profile is True


def test_environment_alone_and_abseil_booleans(monkeypatch):
    options = parse(
        ["--noprofile", "--jit_compile=false"],
        monkeypatch,
        {"backbone_ref": "efficientdet-d2", "num_epochs": "5"},
    )
    assert options.model_name == "efficientdet-d2"
    assert options.num_epochs == 5
    assert options.profile is False
    assert options.jit_compile is False
    assert parse(["--profile=true"], monkeypatch).profile is True


def test_bad_environment_value_names_the_variable(monkeypatch):
    with pytest.raises(UserError, match="environment variable batch_size='eight'"):
        parse([], monkeypatch, {"batch_size": "eight"})


def test_params_file_errors_and_unknown_flags(tmp_path, monkeypatch, caplog):
    params = tmp_path / "params.config"
    params.write_text("--use_tpu=false\n--num_epochs=3\n")
    assert parse([f"@{params}"], monkeypatch).num_epochs == 3
    assert "--use_tpu=false" in caplog.text
    params.write_text("--batch_size=zero\n")
    with pytest.raises(UserError, match="params file: .*batch_size"):
        parse([f"@{params}"], monkeypatch)


def test_bad_command_line_flag_exits(monkeypatch):
    with pytest.raises(SystemExit):
        parse(["--mode=fly"], monkeypatch)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("learning_rate=0.02,optimizer=adam", {"learning_rate": 0.02, "optimizer": "adam"}),
        ("image_size=640x384, jitter_min=0.5", {"image_size": "640x384", "jitter_min": 0.5}),
        (
            '{"lr_decay_method": "stepwise", "var_freeze_expr": null}',
            {"lr_decay_method": "stepwise", "var_freeze_expr": None},
        ),
        ({"momentum": 0.8}, {"momentum": 0.8}),
    ],
)
def test_hparams_forms(text, expected):
    assert flags.parse_hparams(text) == expected


def test_hparams_yaml_file(tmp_path):
    path = tmp_path / "hparams.yaml"
    path.write_text("learning_rate: 0.01\nautoaugment_policy: v0\n")
    assert flags.parse_hparams(str(path)) == {"learning_rate": 0.01, "autoaugment_policy": "v0"}
    with pytest.raises(UserError, match="not found"):
        flags.parse_hparams(str(tmp_path / "missing.yaml"))
    path.write_text("- a list\n")
    with pytest.raises(UserError, match="mapping"):
        flags.parse_hparams(str(path))


def test_url_dataset_runs_the_data_stage_once(tmp_path):
    """--url_dataset runs the workflow's own data stage; a second call finds it up to date."""
    train_pattern, val_pattern = url_dataset.prepare(str(SAMPLE_ZIP), tmp_path / "data", 0.7)
    train_files, val_files = sorted(glob.glob(train_pattern)), sorted(glob.glob(val_pattern))
    train_count = sum(1 for path in train_files for _ in read_records(path))
    val_count = sum(1 for path in val_files for _ in read_records(path))
    assert train_count + val_count == 150 and train_count > val_count > 0
    dataset = tmp_path / "data" / "results" / "dataset"
    assert (dataset / "label_map.yaml").is_file() and (dataset / "val_coco.json").is_file()
    modified = [Path(path).stat().st_mtime for path in train_files]
    assert url_dataset.prepare(str(SAMPLE_ZIP), tmp_path / "data", 0.7) == (
        train_pattern,
        val_pattern,
    )
    assert [Path(path).stat().st_mtime for path in train_files] == modified


def test_url_dataset_failure_names_the_url(tmp_path):
    with pytest.raises(UserError, match="missing.zip: the data stage failed"):
        url_dataset.prepare(str(tmp_path / "missing.zip"), tmp_path / "data", 0.7)
