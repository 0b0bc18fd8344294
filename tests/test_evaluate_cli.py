"""`efficientdet evaluate` on a tiny d0 checkpoint written as training writes them."""

import json

import cv2
import pytest
import yaml

from conftest import run_cli
from evaluate_helpers import IMAGE_SIZE, FakeRun, write_val_split
from train_helpers import LABEL_MAP

NUM_VAL = 5
STEP = 7


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_val_split(root / "results" / "shapes", NUM_VAL)
    run = root / "models" / "run"
    FakeRun(run).save(STEP)
    return root, data, run


def evaluate(data, *extra, check=True):
    return run_cli("evaluate", f"--val_file_pattern={data}/tfrecords/val-*.tfrecord",
                   "--batch_size=2", *extra, check=check)


def test_evaluate_writes_metrics_and_plot(project, tmp_path):
    """Flags as the original tool takes them, from a params file: --model_dir picks the
    latest checkpoint, --eval_samples limits the images."""
    root, data, run = project
    output = root / "results" / "run" / "eval" / f"ckpt-{STEP}.json"
    params = tmp_path / "params.config"
    params.write_text(f"--model_dir={run}\n--eval_samples={NUM_VAL - 1}\n# a comment\n")
    evaluate(data, f"@{params}", f"--output={output}", f"--tensorboard_dir={run}/logs/validation")
    result = json.loads(output.read_text())
    assert result["checkpoint"] == f"{run}/checkpoints/ckpt-{STEP}" and result["step"] == STEP
    assert result["num_images"] == NUM_VAL - 1 and result["max_samples"] == NUM_VAL - 1
    assert result["image_size"] == [IMAGE_SIZE, IMAGE_SIZE]
    assert result["ground_truth"] == str(data / "val_coco.json")
    metrics = result["metrics"]
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                 "ARm", "ARl", "VOC_AP50"):
        assert name in metrics and (metrics[name] is None or 0.0 <= metrics[name] <= 1.0)
    assert [(row["id"], row["name"]) for row in result["per_class"]] == list(LABEL_MAP.items())
    assert "all-point" in result["voc_ap_method"]
    # The EMA weights (which detect nothing) were evaluated, not the raw ones.
    assert result["num_detections"] == 0 and metrics["AP"] == 0.0
    assert cv2.imread(str(output.with_suffix(".png"))) is not None
    assert list((run / "logs" / "validation").glob("events.out.tfevents.*"))


def test_evaluate_errors(project, tmp_path):
    root, data, run = project
    missing = evaluate(data, f"--checkpoint={run}/checkpoints/ckpt-999", check=False)
    assert missing.returncode == 1 and "ckpt-999: checkpoint not found" in missing.stderr

    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoints").symlink_to(run / "checkpoints")
    renamed = {1: "square", 2: "circle", 3: "triangle"}
    (other / "model.yaml").write_text(yaml.safe_dump(
        {**yaml.safe_load((run / "model.yaml").read_text()), "label_map": renamed}))
    mismatch = evaluate(data, f"--model_dir={other}", check=False)
    assert mismatch.returncode == 1
    assert "label map mismatch" in mismatch.stderr and "id 2: model 'circle'" in mismatch.stderr

    empty = tmp_path / "empty"
    (empty / "tfrecords").mkdir(parents=True)
    (empty / "tfrecords" / "val-00000-of-00001.tfrecord").write_bytes(b"")
    (empty / "val_coco.json").write_text((data / "val_coco.json").read_text())
    result = evaluate(empty, f"--model_dir={run}", check=False)
    assert result.returncode == 1 and "validation split is empty" in result.stderr
    assert not list(tmp_path.rglob("*.json.*"))
