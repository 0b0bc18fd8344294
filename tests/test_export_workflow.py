"""`snakemake frozen_model predictions` on the bundled sample, with a tiny training run."""

import json

import pandas as pd
import pytest
import yaml

from conftest import run_snakemake

RUN = "tiny"


@pytest.mark.slow
def test_frozen_model_and_predictions_targets(workdir):
    overrides = {
        "model": {"name": "efficientdet-d0", "image_size": 128, "pretrained": None, "hparams": {}},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "examples_per_epoch": 16,
            "run": RUN,
            "mode": "train",
        },
        "export": {"checkpoint": "best", "calibration_images": 4},
        "infer": {"images": None, "min_score": 0.0, "backend": "tflite_int8", "batch_size": 4},
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    run_snakemake(
        workdir,
        "frozen_model",
        "predictions",
        "--configfile",
        workdir / "config" / "config.yaml",
        workdir / "tiny.yaml",
        timeout=1500,
    )

    export = workdir / "models" / RUN / "export"
    metadata = json.loads((export / "metadata.json").read_text())
    evaluations = {
        int(path.stem.split("-")[1]): json.loads(path.read_text())["metrics"]["AP"]
        for path in (workdir / "results" / RUN / "eval").glob("ckpt-*.json")
    }
    assert len(evaluations) == 2  # best: every checkpoint is evaluated
    assert metadata["step"] == max(evaluations, key=lambda step: (evaluations[step], step))
    assert metadata["metrics"]["AP"] == evaluations[metadata["step"]]
    assert {"saved_model", "frozen_model.pb", "model_int8.tflite", "model.onnx"} <= {
        path.name for path in export.iterdir()
    }
    assert (workdir / "logs" / RUN / "export.log").is_file()

    predictions = workdir / "results" / RUN / "predictions"
    val_images = (workdir / "results" / "sample" / "splits" / "val.txt").read_text().split()
    assert len(list((predictions / "images").iterdir())) == len(val_images)
    table = pd.read_csv(predictions / "detections.csv")
    assert len(table) > 0 and set(table["image"]) <= {path.split("/")[-1] for path in val_images}
