"""COCO and VOC metrics on hand-made detections whose AP is known, and the metrics table."""

import json
import subprocess
import sys

import cv2
import pandas as pd
import pytest

from conftest import run_cli
from efficientdet.errors import UserError
from efficientdet.evaluate.coco import METRIC_NAMES, evaluate_detections, load_ground_truth
from efficientdet.evaluate.plots import plot_pr_curves
from efficientdet.evaluate.voc import voc_ap, voc_ap_per_class

# Non-contiguous category ids, listed out of order: names must follow ids, not positions.
CATEGORIES = [
    {"id": 9, "name": "triangle"},
    {"id": 2, "name": "circle"},
    {"id": 5, "name": "square"},
]
NUM_IMAGES = 4


def ground_truth_dict():
    """Four 200x200 images; each holds one circle (id 2) and one square (id 5), no triangle."""
    images = [
        {"id": 10 + i, "width": 200, "height": 200, "file_name": f"{i}.jpg"}
        for i in range(NUM_IMAGES)
    ]
    annotations = []
    for i in range(NUM_IMAGES):
        for category_id, box in ((2, [10, 10, 60, 60]), (5, [100, 90, 80, 70])):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 10 + i,
                    "category_id": category_id,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                    "difficult": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


@pytest.fixture
def ground_truth(tmp_path):
    path = tmp_path / "val_coco.json"
    path.write_text(json.dumps(ground_truth_dict()))
    return load_ground_truth(path)


def detection(annotation, score=0.9, category_id=None, shift=0.0):
    x, y, w, h = annotation["bbox"]
    return {
        "image_id": annotation["image_id"],
        "category_id": category_id or annotation["category_id"],
        "bbox": [x + shift, y, w, h],
        "score": score,
    }


def annotations_of(ground_truth, category_id):
    return [a for a in ground_truth.dataset["annotations"] if a["category_id"] == category_id]


def per_class(evaluation):
    return {row["name"]: row for row in evaluation.per_class}


def test_perfect_detections_score_one(ground_truth):
    detections = [detection(a) for a in ground_truth.dataset["annotations"]]
    evaluation = evaluate_detections(ground_truth, detections)
    for name in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
        assert evaluation.metrics[name] == pytest.approx(1.0)
    # All boxes are medium (32^2 < area < 96^2): small and large are undefined, not 0 or -1.
    assert evaluation.metrics["APm"] == pytest.approx(1.0)
    assert evaluation.metrics["APs"] is None and evaluation.metrics["APl"] is None
    assert set(evaluation.metrics) == set(METRIC_NAMES)
    rows = per_class(evaluation)
    assert rows["circle"]["AP"] == pytest.approx(1.0)
    assert rows["triangle"]["AP"] is None and rows["triangle"]["num_ground_truth"] == 0


def test_per_class_names_follow_category_ids(ground_truth):
    """Circles found perfectly, squares not at all: the names must carry the right APs."""
    detections = [detection(a) for a in annotations_of(ground_truth, 2)]
    evaluation = evaluate_detections(ground_truth, detections)
    rows = per_class(evaluation)
    assert rows["circle"]["id"] == 2 and rows["circle"]["AP"] == pytest.approx(1.0)
    assert rows["square"]["id"] == 5 and rows["square"]["AP"] == 0.0
    assert rows["triangle"]["id"] == 9 and rows["triangle"]["AP"] is None
    assert rows["circle"]["num_ground_truth"] == rows["square"]["num_ground_truth"] == NUM_IMAGES
    assert evaluation.metrics["AP"] == pytest.approx(0.5)


def test_half_the_boxes_missing(ground_truth):
    circles = annotations_of(ground_truth, 2)
    squares = annotations_of(ground_truth, 5)
    detections = [detection(a) for a in circles + squares[: NUM_IMAGES // 2]]
    evaluation = evaluate_detections(ground_truth, detections)
    # Precision 1 up to recall 0.5: 51 of COCO's 101 recall points.
    assert per_class(evaluation)["square"]["AP"] == pytest.approx(51 / 101)
    assert per_class(evaluation)["square"]["AP50"] == pytest.approx(51 / 101)
    assert evaluation.metrics["AR100"] == pytest.approx((1.0 + 0.5) / 2)
    voc = voc_ap_per_class(ground_truth.dataset["annotations"], detections, [2, 5, 9])
    assert voc == {2: pytest.approx(1.0), 5: pytest.approx(0.5), 9: None}


def test_wrong_class_scores_zero(ground_truth):
    swap = {2: 5, 5: 2}
    detections = [
        detection(a, category_id=swap[a["category_id"]])
        for a in ground_truth.dataset["annotations"]
    ]
    evaluation = evaluate_detections(ground_truth, detections)
    assert evaluation.metrics["AP"] == 0.0 and evaluation.metrics["AR100"] == 0.0
    assert voc_ap_per_class(ground_truth.dataset["annotations"], detections, [2, 5]) == {
        2: 0.0,
        5: 0.0,
    }


def test_no_detections_score_zero(ground_truth):
    evaluation = evaluate_detections(ground_truth, [])
    assert evaluation.metrics["AP"] == 0.0
    assert per_class(evaluation)["circle"]["AP50"] == 0.0


def test_evaluated_images_restrict_the_ground_truth(ground_truth):
    """--eval_samples: images left out do not count as missed objects."""
    kept = [10, 11]
    detections = [
        detection(a) for a in ground_truth.dataset["annotations"] if a["image_id"] in kept
    ]
    evaluation = evaluate_detections(ground_truth, detections, image_ids=kept)
    assert evaluation.metrics["AP"] == pytest.approx(1.0)
    assert per_class(evaluation)["circle"]["num_ground_truth"] == len(kept)


def test_localisation_error_lowers_strict_iou_only(ground_truth):
    # Shifted by 12 px: IoU 48/72 = 0.67 for the circles, so AP50 holds and AP75 fails.
    detections = [detection(a, shift=12.0) for a in annotations_of(ground_truth, 2)]
    circle = per_class(evaluate_detections(ground_truth, detections))["circle"]
    assert circle["AP50"] == pytest.approx(1.0)
    assert circle["AP"] == pytest.approx(1.0 * 4 / 10)  # IoU thresholds 0.5..0.65 of ten


def test_detections_must_match_the_ground_truth(ground_truth):
    stray = {"image_id": 999, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.5}
    with pytest.raises(UserError, match="image ids"):
        evaluate_detections(ground_truth, [stray])
    unknown_class = {**stray, "image_id": 10, "category_id": 7}
    with pytest.raises(UserError, match="label map mismatch"):
        evaluate_detections(ground_truth, [unknown_class])


def test_empty_or_missing_ground_truth(tmp_path):
    empty = tmp_path / "val_coco.json"
    empty.write_text(json.dumps({**ground_truth_dict(), "images": [], "annotations": []}))
    with pytest.raises(UserError, match="validation split is empty"):
        load_ground_truth(empty)
    with pytest.raises(UserError, match="not found"):
        load_ground_truth(tmp_path / "missing.json")


def test_voc_ap_formula():
    # Three objects; detections by score: TP FP TP FP TP.
    recall = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1]
    precision = [1, 1 / 2, 2 / 3, 1 / 2, 3 / 5]
    # All-point: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], 3/5 on (2/3, 1].
    assert voc_ap(recall, precision) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # 11-point: 4 thresholds (0..0.3) at 1, 3 (0.4..0.6) at 2/3, 4 (0.7..1) at 3/5.
    assert voc_ap(recall, precision, use_11_point=True) == pytest.approx(
        (4 + 3 * 2 / 3 + 4 * 3 / 5) / 11
    )


def test_voc_matching_duplicates_and_difficult():
    def box(image_id, bbox, **extra):
        return {"image_id": image_id, "category_id": 1, "bbox": bbox, **extra}

    annotations = [
        box(1, [0, 0, 10, 10]),
        box(2, [0, 0, 10, 10]),
        box(3, [50, 50, 10, 10]),
        box(3, [0, 0, 10, 10], difficult=1),
    ]
    detections = [
        {**box(1, [0, 0, 10, 10]), "score": 0.9},  # TP
        {**box(1, [1, 0, 10, 10]), "score": 0.8},  # duplicate of the same object: FP
        {**box(3, [0, 0, 10, 10]), "score": 0.7},  # on the difficult object: ignored
        {**box(2, [0, 0, 10, 10]), "score": 0.6},  # TP
        {**box(3, [30, 30, 5, 5]), "score": 0.5},  # no overlap: FP
        {**box(3, [50, 50, 10, 10]), "score": 0.4},  # TP
    ]
    # Counted sequence TP FP TP FP TP over three counted objects, as in test_voc_ap_formula.
    assert voc_ap_per_class(annotations, detections, [1]) == {
        1: pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    }


def test_pr_curve_plot(ground_truth, tmp_path):
    circles = annotations_of(ground_truth, 2)
    evaluation = evaluate_detections(ground_truth, [detection(a) for a in circles])
    path = tmp_path / "ckpt-5.png"
    plot_pr_curves(evaluation, path, title="test")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["ckpt-5.png"]


def write_evaluation(folder, step, ap):
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {name: ap for name in METRIC_NAMES} | {
        "APs": None,
        "VOC_AP50": ap,
        "VOC07_AP50": ap / 2,
    }
    voc = {"VOC_AP50": ap, "VOC07_AP50": ap / 2}
    (folder / f"ckpt-{step}.json").write_text(
        json.dumps(
            {
                "step": step,
                "num_images": 4,
                "metrics": metrics,
                "per_class": [
                    {"id": 2, "name": "circle", "AP": ap, **voc},
                    {"id": 5, "name": "square", "AP": None, "VOC_AP50": None, "VOC07_AP50": None},
                ],
            }
        )
    )


def test_metrics_table_and_plot(tmp_path):
    folder = tmp_path / "results" / "run" / "eval"
    for step, ap in ((1200, 0.5), (300, 0.1), (20000, 0.8)):
        write_evaluation(folder, step, ap)
    csv, png = folder / "metrics.csv", folder / "metrics.png"
    run_cli("evaluate", "--eval_dir", folder, "--output", csv, "--plot", png)
    table = pd.read_csv(csv)
    assert table["step"].tolist() == [300, 1200, 20000]
    assert table["AP"].tolist() == pytest.approx([0.1, 0.5, 0.8])
    assert table["APs"].isna().all()
    assert table["AP/circle"].tolist() == pytest.approx([0.1, 0.5, 0.8])
    assert table["VOC07_AP50"].tolist() == pytest.approx([0.05, 0.25, 0.4])
    assert table["VOC07_AP50/circle"].tolist() == pytest.approx([0.05, 0.25, 0.4])
    assert table["VOC_AP50/square"].isna().all()
    assert cv2.imread(str(png)) is not None


def test_metrics_errors(tmp_path):
    result = run_cli(
        "evaluate",
        "--eval_dir",
        tmp_path,
        "--output",
        tmp_path / "m.csv",
        "--plot",
        tmp_path / "m.png",
        check=False,
    )
    assert result.returncode == 1 and "no ckpt-*.json" in result.stderr
    (tmp_path / "ckpt-3.json").write_text("{}")
    result = run_cli(
        "evaluate",
        "--eval_dir",
        tmp_path,
        "--output",
        tmp_path / "m.csv",
        "--plot",
        tmp_path / "m.png",
        check=False,
    )
    assert result.returncode == 1 and "ckpt-3.json: not an evaluation" in result.stderr
    assert not (tmp_path / "m.csv").exists()


def test_metrics_stage_does_not_import_tensorflow():
    code = (
        "import sys, efficientdet.evaluate.evaluate, efficientdet.evaluate.coco,"
        " efficientdet.evaluate.voc;"
        "assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
