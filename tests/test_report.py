"""`snakemake --report`, the default target and failed-job logs on the bundled sample."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake
from report_helpers import report_categories, reported_files

RUN = "tiny"
DATA = "results/sample"


def test_report_before_anything_ran_says_what_to_run(workdir):
    result = run_snakemake(workdir, "--report", workdir / "report.html", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "nothing to report yet" in output and "snakemake --cores" in output
    assert not (workdir / "report.html").exists()


def test_failed_job_shows_its_error_in_snakemake_output(workdir):
    (workdir / "resources" / "sample-voc.zip").write_bytes(b"not a zip archive")
    result = run_snakemake(
        workdir, "--workflow-profile", REPO / "profiles" / "local", "tfrecords", check=False
    )
    assert result.returncode != 0
    log = (workdir / "logs" / "sample" / "unpack.log").read_text().strip().splitlines()
    assert "sample/sample-voc.zip" in log[-1]  # the error, naming the archive, ends the log
    assert log[-1] in result.stdout + result.stderr


def test_report_of_a_run_without_training_shows_the_data_stage(workdir):
    run_snakemake(workdir, "tfrecords", "dataset_stats", "inspect")
    # The default target goes on from there to every later stage.
    planned = run_snakemake(workdir, "--dry-run").stdout
    jobs = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", planned, re.MULTILINE))
    later = {"train", "training_curves", "inspect_pipeline", "evaluate", "export", "export_report"}
    assert later | {"infer"} <= jobs
    assert "dataset_stats" not in jobs
    run_snakemake(workdir, "--report", workdir / "report.zip")

    categories = report_categories(workdir / "report.zip")
    assert set(categories) == {"Data"}
    data = reported_files(categories, "Data")
    expected = {f"{DATA}/validation_report.txt"} | {
        f"{DATA}/stats/{name}.png" for name in ("class_counts", "objects_per_image", "box_sizes")
    }
    assert expected <= data
    for split in ("train", "val"):
        drawn = {path for path in data if path.startswith(f"{DATA}/inspect/{split}/")}
        images = len((workdir / DATA / "splits" / f"{split}.txt").read_text().split())
        assert len(drawn) == min(16, images)


@pytest.mark.slow
def test_report_of_a_full_run_has_every_stage(workdir):
    overrides = {
        "model": {"name": "efficientdet-d0", "image_size": 128, "pretrained": None, "hparams": {}},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "examples_per_epoch": 16,
            "run": RUN,
            "mode": "traineval",
        },
        "export": {"checkpoint": "last", "calibration_images": 4},
        "infer": {"images": None, "min_score": 0.0, "backend": "saved_model", "batch_size": 4},
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    configs = ("--configfile", workdir / "config" / "config.yaml", workdir / "tiny.yaml")
    run_snakemake(workdir, *configs, timeout=1800)  # no target: the default, everything
    run_snakemake(workdir, *configs, "--report", workdir / "report.zip")

    categories = report_categories(workdir / "report.zip")
    assert set(categories) == {"Data", "Training", "Evaluation", "Export", "Predictions"}
    for view, subcategory in (
        ("train", "Pipeline: train view (augmented)"),
        ("eval", "Pipeline: eval view"),
    ):
        drawn = categories["Data"][subcategory]
        folder = f"results/{RUN}/inspect_pipeline/{view}/"
        assert drawn and all(path.startswith(folder) for path in drawn)
    assert {
        f"results/{RUN}/training_curves.png",
        f"results/{RUN}/train.done.json",
        f"results/{RUN}/model.yaml",
    } <= (reported_files(categories, "Training"))
    evaluation = reported_files(categories, "Evaluation")
    assert {
        f"results/{RUN}/eval/metrics.csv",
        f"results/{RUN}/eval/metrics.png",
        f"results/{RUN}/export/pr_curves.png",
        f"results/{RUN}/export/per_class_ap.csv",
    } <= evaluation
    assert {f"results/{RUN}/export/formats.csv", f"models/{RUN}/export/metadata.json"} <= (
        reported_files(categories, "Export")
    )
    predictions = reported_files(categories, "Predictions")
    val_images = (workdir / DATA / "splits" / "val.txt").read_text().split()
    assert f"results/{RUN}/predictions/detections.csv" in predictions
    assert len([path for path in predictions if "/images/" in path]) == len(val_images)

    formats = pd.read_csv(workdir / f"results/{RUN}/export/formats.csv").set_index("file")
    metadata = json.loads((workdir / f"models/{RUN}/export/metadata.json").read_text())
    assert set(formats.index) == set(metadata["files"])
    assert formats.loc["saved_model", "min_iou"] == pytest.approx(1.0)
    # The frozen graph is the SavedModel's function with its variables as constants.
    assert formats.loc["frozen_model.pb", "min_iou"] > 0.99
    assert (formats["compared"].dropna() == formats.loc["saved_model", "compared"]).all()
    onnx = workdir / f"models/{RUN}/export/model.onnx"
    assert formats.loc["model.onnx", "size_bytes"] == onnx.stat().st_size
    assert (formats["size_bytes"] > 0).all()
