"""The Snakemake `train` rule on the bundled sample: data stage, training, raising epochs."""

import json

import pandas as pd
import yaml

from conftest import SAMPLE_ZIP, run_snakemake

RUN = "sample-efficientdet-d0"


def configure(workdir, **train):
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"].update(image_size=128, hparams={"learning_rate": 0.02, "lr_warmup_epoch": 0})
    config["train"].update(batch_size=2, examples_per_epoch=4, mode="train", **train)
    path.write_text(yaml.safe_dump(config))


def test_train_rule_trains_then_continues_when_epochs_grow(workdir):
    assert SAMPLE_ZIP.exists()
    configure(workdir, epochs=1)
    run_snakemake(workdir, "train")
    done = workdir / "results" / RUN / "train.done.json"
    model_dir = workdir / "models" / RUN
    summary = json.loads(done.read_text())
    assert summary["global_step"] == 2
    assert summary["epochs"] == 1
    assert (model_dir / "checkpoints" / "ckpt-2.index").is_file()
    description = yaml.safe_load((model_dir / "model.yaml").read_text())
    stats = yaml.safe_load((workdir / "results" / "sample" / "stats" / "summary.yaml").read_text())
    assert description["config"]["max_instances_per_image"] == stats["max_objects_per_image"]
    assert description["label_map"] == yaml.safe_load(
        (workdir / "results" / "sample" / "label_map.yaml").read_text()
    )
    assert (workdir / "logs" / RUN / "train.log").is_file()

    # Nothing changed: nothing to do.
    dry_run = run_snakemake(workdir, "train", "--dry-run")
    assert "Nothing to be done" in dry_run.stdout + dry_run.stderr

    # More epochs: the job reruns and continues from ckpt-2.
    configure(workdir, epochs=2)
    run_snakemake(workdir, "train")
    summary = json.loads(done.read_text())
    assert summary["global_step"] == 4
    assert (model_dir / "checkpoints" / "ckpt-4.index").is_file()
    assert (model_dir / "checkpoints" / "ckpt-2.index").is_file()
    log = (workdir / "logs" / RUN / "train.log").read_text()
    assert f"resuming from models/{RUN}/checkpoints/ckpt-2" in log
    assert list(pd.read_csv(model_dir / "history.csv")["step"]) == [2, 4]
