"""`snakemake evaluate`: one job per checkpoint, only new checkpoints evaluated, deleted
checkpoints harmless. Checkpoints are written directly (no training) to stay fast."""

import json

import pandas as pd
import yaml

from conftest import planned_jobs, run_snakemake
from evaluate_helpers import IMAGE_SIZE, FakeRun

RUN = "sample-efficientdet-d0"


def test_only_new_checkpoints_are_evaluated(workdir):
    config_file = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["evaluate"]["max_samples"] = 4
    config["model"]["image_size"] = IMAGE_SIZE  # the run's, as recorded by FakeRun
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(workdir, "tfrecords", "results/sample/stats/summary.yaml")
    label_map = yaml.safe_load((workdir / "results/sample/label_map.yaml").read_text())
    # keep=1 deletes the previous checkpoint on each save, as train.keep_checkpoints does.
    run = FakeRun(workdir / "models" / RUN, label_map=label_map, keep=1)
    run.save(100)
    # Training is done: its checkpoint (the Snakemake one) output exists.
    results = workdir / "results" / RUN
    results.mkdir(parents=True)
    (results / "train.done.json").write_text("{}")
    evaluations = results / "eval"

    assert planned_jobs(run_snakemake(workdir, "evaluate", "-n")) == {
        "evaluate_checkpoint": 1,
        "evaluate": 1,
    }
    run_snakemake(workdir, "evaluate")
    first = json.loads((evaluations / "ckpt-100.json").read_text())
    assert first["step"] == 100 and first["num_images"] == 4
    assert [row["name"] for row in first["per_class"]] == list(label_map.values())
    assert (evaluations / "ckpt-100.png").is_file() and (evaluations / "metrics.png").is_file()
    assert pd.read_csv(evaluations / "metrics.csv")["step"].tolist() == [100]

    run.save(200)  # ckpt-100 is gone now
    dry_run = run_snakemake(workdir, "evaluate", "-n")
    assert planned_jobs(dry_run) == {"evaluate_checkpoint": 1, "evaluate": 1}
    assert "step=200" in dry_run.stdout and "step=100" not in dry_run.stdout
