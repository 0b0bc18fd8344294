"""Every target is fresh: a config change reruns exactly the jobs it affects, whichever target
is asked for (the table of config/README.md, "What a change reruns").

One small run is made for real once (data, two epochs of training, their evaluations); its
export and predictions are marked done with `snakemake --touch`, since only Snakemake's
bookkeeping matters here (tests/test_full_run.py makes them for real). Each case then
changes one key and asks Snakemake for dry runs only.
"""

import hashlib
import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, SAMPLE_ZIP, make_workdir, planned_jobs, run_snakemake

RUN = "sample-efficientdet-d0"
# The sample is a local archive: unpack reads it where it lies, with no `download` job.
DATA_RULES = {"unpack", "index", "split"}
TRAIN_RULES = DATA_RULES | {"shard", "dataset_stats", "train"}
EXPORT_RULES = TRAIN_RULES | {"ground_truth", "evaluate_checkpoint", "export"}
# The rules each target needs ("" is the default target); the targets without a job of their own
# (tfrecords, frozen_model, predictions) run when one of their inputs does.
TARGET_RULES = {
    "tfrecords": DATA_RULES | {"shard", "ground_truth", "tfrecords"},
    "dataset_stats": DATA_RULES | {"dataset_stats"},
    "inspect": DATA_RULES | {"shard", "inspect"},
    "train": TRAIN_RULES,
    "evaluate": TRAIN_RULES | {"ground_truth", "evaluate_checkpoint", "evaluate"},
    "frozen_model": EXPORT_RULES | {"frozen_model"},
    "predictions": EXPORT_RULES | {"infer", "predictions"},
    "": EXPORT_RULES
    | {"ground_truth", "dataset_stats", "inspect", "training_curves", "inspect_pipeline"}
    | {"evaluate", "export_report", "infer", "all"},
}
ALL_RULES = set().union(*TARGET_RULES.values())
TARGET_ONLY = {"tfrecords", "frozen_model", "predictions", "all"}
# The checkpoints training writes are known only once it has run: a dry run shows train and the
# table, not the evaluations of checkpoints still to come.
AFTER_EXPORT = {"export", "export_report", "infer"}
AFTER_TRAIN = AFTER_EXPORT | {"train", "training_curves", "inspect_pipeline", "evaluate"}
AFTER_SPLIT = ALL_RULES - {"unpack", "index"}

# config key -> (a new value, the rules that rerun). The same groups as config/README.md.
AFFECTS = {
    "dataset.name": ("other", ALL_RULES),
    "dataset.url": ("resources/copy.zip", ALL_RULES),
    "dataset.sha256": ("SHA256", ALL_RULES | {"download"}),
    "dataset.max_unpacked_gb": (1, ALL_RULES),
    "dataset.label_map": (
        {"1": "circle", "2": "square", "3": "triangle"},
        ALL_RULES - {"unpack"},
    ),
    "dataset.train_fraction": (0.6, AFTER_SPLIT),
    "dataset.seed": (1, AFTER_SPLIT),
    "dataset.splits": (
        {"train": ["sample-voc/train"], "val": ["sample-voc/val"]},
        ALL_RULES - {"unpack"},
    ),
    "dataset.images_per_shard": (30, AFTER_TRAIN | {"shard", "inspect", "evaluate_checkpoint"}),
    "dataset.inspect_images": (4, {"inspect", "inspect_pipeline"}),
    "model.name": ("efficientdet-d1", AFTER_TRAIN),
    "train.run": ("second", AFTER_TRAIN),
    "model.pretrained": ("imagenet", AFTER_TRAIN),
    "model.hparams": ({"learning_rate": 0.03, "lr_warmup_epoch": 0}, AFTER_TRAIN),
    "train.epochs": (3, AFTER_TRAIN),
    "train.examples_per_epoch": (6, AFTER_TRAIN),
    "train.strategy": ("mirrored", AFTER_TRAIN),
    "train.mode": ("traineval", AFTER_TRAIN),
    "train.keep_checkpoints": (5, AFTER_TRAIN),
    "train.mixed_precision": ("float32", AFTER_TRAIN),
    "train.jit_compile": (True, AFTER_TRAIN),
    "train.steps_per_execution": (2, AFTER_TRAIN),
    "train.cache": (True, AFTER_TRAIN),
    "train.batch_size": (4, AFTER_TRAIN | {"evaluate_checkpoint"}),
    "evaluate.max_samples": (16, AFTER_EXPORT | {"evaluate_checkpoint", "evaluate"}),
    "export.checkpoint": ("best", AFTER_EXPORT),
    "export.calibration_images": (8, AFTER_EXPORT),
    "infer.images": ("results/sample/voc", {"infer", "export_report"}),
    "infer.min_score": (0.5, {"infer", "export_report"}),
    "infer.backend": ("frozen_graph", {"infer"}),
    "infer.batch_size": (4, {"infer"}),
    # Read only with --software-deployment-method conda, which these runs do not use.
    "software.tensorflow": ("cuda", set()),
}
# model.image_size is the one key without a row: another size for the same run is refused.
INCOMPATIBLE = {"model.image_size": 256}


def test_the_table_names_every_config_key():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = {
        f"{section}.{key}"
        for section, body in schema["properties"].items()
        for key in body.get("properties", {})
    }
    assert set(AFFECTS) | set(INCOMPATIBLE) == keys


def expected_rules(target, affected):
    """The rules a dry run of `target` lists after a change that reruns `affected`."""
    # `download` joins the DAG of every target once the sample archive is given a sha256.
    rules = affected & (TARGET_RULES[target] | {"download"})
    if rules:
        rules |= TARGET_RULES[target] & TARGET_ONLY
    if "split" in rules:
        # The shards (and so the evaluations) are named after the split's size: a dry run
        # lists them only once the split checkpoint has run again.
        rules -= {"shard", "evaluate_checkpoint"}
    return rules


def read_config(folder):
    return yaml.safe_load((folder / "config" / "config.yaml").read_text())


def write_config(folder, config):
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def set_key(config, key, value):
    section, name = key.split(".")
    config[section][name] = value


def dry_run_rules(folder, *targets):
    """The rules of the jobs a dry run of `targets` ("": the default) plans."""
    return set(planned_jobs(run_snakemake(folder, "--dry-run", *filter(None, targets))))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The sample through every target: a tiny model, two epochs of two steps, evaluated."""
    folder = make_workdir(tmp_path_factory.mktemp("finished"))
    shutil.copy(SAMPLE_ZIP, folder / "resources" / "copy.zip")
    config = read_config(folder)
    config["model"].update(image_size=128, hparams={"learning_rate": 0.02, "lr_warmup_epoch": 0})
    config["train"].update(epochs=2, batch_size=2, examples_per_epoch=4, mode="train")
    config["evaluate"]["max_samples"] = 8
    write_config(folder, config)
    run_snakemake(
        folder,
        "tfrecords",
        "dataset_stats",
        "inspect",
        "evaluate",
        "training_curves",
        "inspect_pipeline",
    )
    (folder / "models" / RUN / "export").mkdir()
    (folder / "results" / RUN / "predictions").mkdir()
    (folder / "results" / RUN / "export").mkdir()
    for name in ("formats.csv", "pr_curves.png", "per_class_ap.csv"):
        (folder / "results" / RUN / "export" / name).touch()
    run_snakemake(
        folder,
        "--touch",
        "--forcerun",
        "export",
        "infer",
        "export_report",
        "--",
        "predictions",
        "export_report",
    )
    return folder


@pytest.fixture
def changed(finished_run):
    """Changes one key of the finished run's config, and restores it afterwards."""
    original = read_config(finished_run)

    def change(key, value):
        config = read_config(finished_run)
        if value == "SHA256":
            value = hashlib.sha256(
                (finished_run / config["dataset"]["url"]).read_bytes()
            ).hexdigest()
        set_key(config, key, value)
        write_config(finished_run, config)
        return finished_run

    yield change
    write_config(finished_run, original)


@pytest.mark.slow
def test_a_finished_run_has_nothing_to_do(finished_run):
    for target in TARGET_RULES:
        assert dry_run_rules(finished_run, target) == set(), target


@pytest.mark.slow
def test_the_finished_run_records_its_training(finished_run):
    summary = json.loads((finished_run / "results" / RUN / "train.done.json").read_text())
    assert (summary["epochs"], summary["global_step"]) == (2, 4)
    model_dir = finished_run / "models" / RUN
    assert summary["checkpoint_files"] == sorted(
        path.name for path in (model_dir / "checkpoints").iterdir()
    )
    assert {"ckpt-2.index", "ckpt-4.index"} <= set(summary["checkpoint_files"])
    assert list(pd.read_csv(model_dir / "history.csv")["step"]) == [2, 4]
    description = yaml.safe_load((model_dir / "model.yaml").read_text())
    data = finished_run / "results" / "sample"
    stats = yaml.safe_load((data / "stats" / "summary.yaml").read_text())
    assert description["config"]["max_instances_per_image"] == stats["max_objects_per_image"]
    assert description["label_map"] == yaml.safe_load((data / "label_map.yaml").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("key", AFFECTS)
def test_a_key_reruns_exactly_what_it_affects(changed, key):
    value, affected = AFFECTS[key]
    folder = changed(key, value)
    # The union of all targets: every affected rule reruns, and no other.
    everything = ("predictions", "evaluate", "inspect", "dataset_stats", "tfrecords")
    assert dry_run_rules(folder, *everything) == set().union(
        *(expected_rules(target, affected) for target in everything)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "key",
    [
        "train.epochs",
        "evaluate.max_samples",
        "infer.min_score",
        "dataset.images_per_shard",
        "dataset.inspect_images",
    ],
)
def test_each_target_reruns_what_it_needs(changed, key):
    value, affected = AFFECTS[key]
    folder = changed(key, value)
    for target in TARGET_RULES:
        assert dry_run_rules(folder, target) == expected_rules(target, affected), target


@pytest.mark.slow
def test_an_incompatible_run_stops_before_any_job(changed):
    folder = changed("model.image_size", 256)
    for target in TARGET_RULES:
        result = run_snakemake(folder, *filter(None, [target]), check=False)
        assert result.returncode != 0, target
        assert (
            "model.image_size: models/sample-efficientdet-d0/ was trained with [128, 128], "
            "not [256, 256]" in result.stderr
        ), target
        assert "train.run" in result.stderr and "Job stats" not in result.stdout, target
    changed("model.image_size", 128)
    changed("train.run", RUN)
    result = run_snakemake(changed("model.name", "efficientdet-d1"), check=False)
    assert (
        result.returncode != 0
        and "model.name: models/sample-efficientdet-d0/ was trained "
        "with efficientdet-d0, not efficientdet-d1"
        in result.stderr
    )
    changed("model.name", "efficientdet-d0")
    result = run_snakemake(changed("dataset.label_map", {"1": "disc", "2": "box"}), check=False)
    assert (
        result.returncode != 0
        and "dataset.label_map: models/sample-efficientdet-d0/" in result.stderr
    )


@pytest.mark.slow
def test_deleted_and_outside_checkpoints(finished_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    model_dir = folder / "models" / RUN
    evaluations = folder / "results" / RUN / "eval"
    # As train.keep_checkpoints deletes the oldest: nothing goes stale.
    for path in (model_dir / "checkpoints").glob("ckpt-2.*"):
        path.unlink()
    for target in TARGET_RULES:
        assert dry_run_rules(folder, target) == set(), target

    # More epochs, then `snakemake evaluate`: training goes on and only its new checkpoint is
    # evaluated.
    config = read_config(folder)
    config["train"]["epochs"] = 3
    write_config(folder, config)
    before = {path.name: path.stat().st_mtime_ns for path in evaluations.glob("ckpt-*.json")}
    assert set(before) == {"ckpt-2.json", "ckpt-4.json"}
    run_snakemake(folder, "evaluate")
    after = {path.name: path.stat().st_mtime_ns for path in evaluations.glob("ckpt-*.json")}
    assert after == dict(before, **{"ckpt-6.json": after["ckpt-6.json"]})
    log = (folder / "logs" / RUN / "train.log").read_text()
    assert f"resuming from models/{RUN}/checkpoints/ckpt-4 (epoch 2, step 4)" in log
    assert list(pd.read_csv(model_dir / "history.csv")["step"]) == [2, 4, 6]

    # A checkpoint that training outside Snakemake put in the same folder (a copy of ckpt-6
    # named as step 8): one evaluation.
    for path in (model_dir / "checkpoints").glob("ckpt-6.*"):
        shutil.copy(path, path.with_name(path.name.replace("ckpt-6", "ckpt-8")))
    assert dry_run_rules(folder, "train") == set()
    dry_run = run_snakemake(folder, "evaluate", "--dry-run")
    assert planned_jobs(dry_run) == {"evaluate_checkpoint": 1, "evaluate": 1}
    assert "step=8" in dry_run.stdout
