"""One whole run of the default target on the bundled sample with a tiny training, then checks of
what each target promises: the report of every stage, the frozen model (best checkpoint) and the
predictions. One run serves them all (it is the slowest thing CI does)."""

import json

import pandas as pd
import pytest
import yaml

from conftest import make_workdir, run_snakemake
from report_helpers import report_categories, reported_files

RUN = "tiny"
DATA = "results/sample"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The working directory after `snakemake` (default target, everything) and its report."""
    workdir = make_workdir(tmp_path_factory.mktemp("full_run"))
    overrides = {
        "model": {"name": "efficientdet-d0", "image_size": 128, "pretrained": None, "hparams": {}},
        "train": {
            "epochs": 2,
            "batch_size": 2,
            "examples_per_epoch": 4,
            "run": RUN,
            "mode": "traineval",
        },
        "export": {"checkpoint": "best", "calibration_images": 4},
        "infer": {"images": None, "min_score": 0.0, "backend": "tflite_int8", "batch_size": 4},
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    run_snakemake(workdir, *_configs(workdir), timeout=1800)
    run_snakemake(workdir, *_configs(workdir), "--report", workdir / "report.zip")
    return workdir


def _configs(workdir):
    return "--configfile", workdir / "config" / "config.yaml", workdir / "tiny.yaml"


def test_report_has_every_stage(full_run):
    categories = report_categories(full_run / "report.zip")
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
    val_images = (full_run / DATA / "splits" / "val.txt").read_text().split()
    assert f"results/{RUN}/predictions/detections.csv" in predictions
    assert len([path for path in predictions if "/images/" in path]) == len(val_images)


def test_export_report_compares_every_format(full_run):
    formats = pd.read_csv(full_run / f"results/{RUN}/export/formats.csv").set_index("file")
    metadata = json.loads((full_run / f"models/{RUN}/export/metadata.json").read_text())
    assert set(formats.index) == set(metadata["files"])
    assert {"saved_model", "frozen_model.pb", "model_int8.tflite", "model.onnx"} <= set(
        formats.index
    )
    assert formats.loc["saved_model", "min_iou"] == pytest.approx(1.0)
    # The frozen graph is the SavedModel's function with its variables as constants.
    assert formats.loc["frozen_model.pb", "min_iou"] > 0.99
    assert (formats["compared"].dropna() == formats.loc["saved_model", "compared"]).all()
    onnx = full_run / f"models/{RUN}/export/model.onnx"
    assert formats.loc["model.onnx", "size_bytes"] == onnx.stat().st_size
    assert (formats["size_bytes"] > 0).all()


def test_frozen_model_is_the_best_checkpoint(full_run):
    metadata = json.loads((full_run / "models" / RUN / "export" / "metadata.json").read_text())
    evaluations = {
        int(path.stem.split("-")[1]): json.loads(path.read_text())["metrics"]["AP"]
        for path in (full_run / "results" / RUN / "eval").glob("ckpt-*.json")
    }
    assert len(evaluations) == 2  # best: every checkpoint is evaluated
    assert metadata["step"] == max(evaluations, key=lambda step: (evaluations[step], step))
    assert metadata["metrics"]["AP"] == evaluations[metadata["step"]]
    assert (full_run / "logs" / RUN / "export.log").is_file()


def test_predictions_cover_the_validation_images(full_run):
    predictions = full_run / "results" / RUN / "predictions"
    val_images = (full_run / DATA / "splits" / "val.txt").read_text().split()
    assert len(list((predictions / "images").iterdir())) == len(val_images)
    table = pd.read_csv(predictions / "detections.csv")
    assert len(table) > 0 and set(table["image"]) <= {path.split("/")[-1] for path in val_images}


def test_alias_targets_are_done_by_the_default_target(full_run):
    result = run_snakemake(
        full_run, *_configs(full_run), "--dry-run", "frozen_model", "predictions"
    )
    assert "Nothing to be done" in result.stdout + result.stderr
