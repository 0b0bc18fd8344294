"""`efficientdet infer`: predictions from any backend, bad input, and the benchmark mode."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_cli
from efficientdet.cli import main
from efficientdet.data.image_files import find_images
from efficientdet.drawing import class_colour, draw_detections
from export_helpers import exported_run, sample_images
from train_helpers import LABEL_MAP

COLUMNS = ["image", "width", "height", "label_id", "label", "score", "ymin", "xmin", "ymax", "xmax"]


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    return exported_run(tmp_path_factory)


@pytest.fixture
def image_folder(tmp_path):
    """Three decodable images of three sizes (one twice another, pixel for pixel), a broken
    one and a text file."""
    folder = tmp_path / "images"
    folder.mkdir()
    image, other = sample_images(4)[[1, 3]]  # images with confident detections
    write_rgb(folder / "a.png", image)
    write_rgb(folder / "b_doubled.png", np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
    write_rgb(folder / "c_wide.jpg", cv2.resize(other, (150, 100)))
    (folder / "d_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def write_rgb(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def infer(*args):
    return main(["infer", *map(str, args)])


def test_infer_writes_annotated_images_and_detection_tables(
    exported, image_folder, tmp_path, caplog
):
    output = tmp_path / "predictions"
    assert (
        infer(
            f"--model={exported.export_dir}",
            f"--images={image_folder}",
            f"--output_dir={output}",
            "--min_score=0.25",
            "--batch_size=2",
        )
        == 0
    )
    assert "d_broken.jpg: skipped, not a decodable image" in caplog.text

    table = pd.read_csv(output / "detections.csv")
    assert list(table.columns) == COLUMNS
    from_json = pd.DataFrame(json.loads((output / "detections.json").read_text()))
    assert list(from_json.columns) == COLUMNS
    assert from_json[COLUMNS[:5]].equals(table[COLUMNS[:5]])
    assert np.allclose(from_json[COLUMNS[5:]], table[COLUMNS[5:]])
    assert (table["score"] >= 0.25).all()
    assert set(table["label"]) <= set(LABEL_MAP.values())
    assert (table["label"] == table["label_id"].map(LABEL_MAP)).all()
    assert (table[["ymin", "xmin"]] >= 0).all().all()
    assert (table["ymax"] <= table["height"]).all() and (table["xmax"] <= table["width"]).all()

    # Boxes are in each image's own pixels: the doubled image gives the same boxes, doubled.
    single = table[table["image"] == "a.png"].reset_index(drop=True)
    doubled = table[table["image"] == "b_doubled.png"].reset_index(drop=True)
    assert len(single) > 0 and len(single) == len(doubled)
    assert np.allclose(
        doubled[["ymin", "xmin", "ymax", "xmax"]],
        2 * single[["ymin", "xmin", "ymax", "xmax"]],
        atol=1e-3,
    )
    assert np.allclose(doubled["score"], single["score"], atol=1e-5)

    written = sorted(path.name for path in (output / "images").iterdir())
    assert written == ["a.png", "b_doubled.png", "c_wide.jpg"]
    annotated = cv2.imread(str(output / "images" / "a.png"))
    original = cv2.imread(str(image_folder / "a.png"))
    assert annotated.shape == original.shape and (annotated != original).any()


def test_every_backend_writes_the_same_predictions(exported, image_folder, tmp_path):
    tables = {}
    for name, model in (
        ("checkpoint", exported.run_dir),
        ("frozen", exported.export_dir / "frozen_model.pb"),
        ("tflite", exported.export_dir / "model_fp32.tflite"),
        ("onnx", exported.export_dir / "model.onnx"),
    ):
        output = tmp_path / name
        assert (
            infer(
                f"--model={model}",
                f"--images={image_folder}/*.png",
                f"--output_dir={output}",
                "--min_score=0.3",
            )
            == 0
        )
        tables[name] = pd.read_csv(output / "detections.csv").sort_values(["image", "score"])
    reference = tables.pop("checkpoint")
    assert len(reference) > 0
    for name, table in tables.items():
        assert list(table["image"]) == list(reference["image"]), name
        assert list(table["label_id"]) == list(reference["label_id"]), name
        assert np.allclose(table["score"], reference["score"], atol=1e-3), name
        assert np.allclose(
            table[["ymin", "xmin", "ymax", "xmax"]],
            reference[["ymin", "xmin", "ymax", "xmax"]],
            atol=0.5,
        ), name


def test_bad_image_inputs_are_clear_errors(exported, tmp_path, caplog):
    tflite = exported.export_dir / "model_fp32.tflite"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert infer(f"--model={tflite}", f"--images={empty}", f"--output_dir={tmp_path / 'out'}") == 1
    assert f"{empty}: folder holds no images" in caplog.text
    assert (
        infer(
            f"--model={tflite}",
            f"--images={tmp_path / 'nowhere' / '*.jpg'}",
            f"--output_dir={tmp_path / 'out'}",
        )
        == 1
    )
    assert "pattern matches no images" in caplog.text

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"garbage")
    assert infer(f"--model={tflite}", f"--images={broken}", f"--output_dir={tmp_path / 'out'}") == 1
    assert "none of the 1 images could be decoded" in caplog.text
    assert not (tmp_path / "out").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".out")]


def test_label_map_must_match_the_model(exported, image_folder, tmp_path, caplog):
    labels = tmp_path / "label_map.yaml"
    labels.write_text(yaml.safe_dump({**LABEL_MAP, 3: "star"}))
    assert (
        infer(
            f"--model={exported.export_dir / 'model.onnx'}",
            f"--images={image_folder}",
            f"--label_map={labels}",
            f"--output_dir={tmp_path / 'out'}",
        )
        == 1
    )
    assert "label map does not match the model" in caplog.text
    assert "'triangle' vs 'star'" in caplog.text


def test_files_of_another_export_are_refused(exported, image_folder, tmp_path, caplog):
    folder = tmp_path / "export"
    shutil.copytree(exported.export_dir, folder)
    arguments = (f"--images={image_folder}", f"--output_dir={tmp_path / 'out'}")

    shutil.copy(folder / "model_fp32.tflite", folder / "renamed.tflite")
    assert infer(f"--model={folder / 'renamed.tflite'}", *arguments) == 1
    assert "renamed.tflite: not listed in" in caplog.text

    (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes() + b"\0")
    assert infer(f"--model={folder / 'model.onnx'}", *arguments) == 1
    assert "model.onnx: differs from the file exported" in caplog.text

    # Metadata of another model (here: another image size) beside the right files.
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["image_size"] = metadata["config"]["image_size"] = [256, 256]
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert infer(f"--model={folder / 'model_fp16.tflite'}", *arguments) == 1
    assert "input has shape [None, 128, 128, 3]" in caplog.text
    assert "expects [None, 256, 256, 3]" in caplog.text
    assert not (tmp_path / "out").exists()


def test_missing_or_corrupt_models_are_clear_errors(exported, image_folder, tmp_path, caplog):
    arguments = (f"--images={image_folder}", f"--output_dir={tmp_path / 'out'}")
    assert infer(f"--model={tmp_path / 'nothing.tflite'}", *arguments) == 1
    assert "nothing.tflite: no such file" in caplog.text
    assert infer(f"--model={tmp_path / 'run'}", *arguments) == 1
    assert "no such checkpoint" in caplog.text or "no TensorFlow checkpoint" in caplog.text

    folder = tmp_path / "export"
    shutil.copytree(exported.export_dir, folder)
    (folder / "frozen_model.pb").write_bytes(b"\x0a\xff\xff truncated")
    metadata = json.loads((folder / "metadata.json").read_text())
    from efficientdet.export.metadata import digest

    metadata["files"]["frozen_model.pb"] = digest(folder / "frozen_model.pb")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert infer(f"--model={folder / 'frozen_model.pb'}", *arguments) == 1
    assert "frozen_model.pb: not a readable frozen graph" in caplog.text


def test_benchmark_prints_latency_and_throughput_per_backend(exported, image_folder, capsys):
    models = [exported.export_dir / "model_fp32.tflite", exported.export_dir / "model.onnx"]
    assert (
        infer(
            "--benchmark",
            "--model",
            *models,
            f"--images={image_folder}",
            "--batch_size=2",
            "--benchmark_runs=2",
            "--warmup_runs=1",
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == [
        "backend",
        "model",
        "batch",
        "ms_per_batch",
        "ms_per_image",
        "images_per_s",
    ]
    rows = [line.split() for line in lines[1:]]
    assert [(row[0], row[2]) for row in rows] == [
        ("tflite", "1"),
        ("tflite", "2"),
        ("onnx", "1"),
        ("onnx", "2"),
    ]
    for row in rows:
        ms_per_batch, ms_per_image, images_per_s = map(float, row[3:])
        assert ms_per_batch > 0
        assert ms_per_image == pytest.approx(ms_per_batch / int(row[2]), abs=0.02)
        assert images_per_s == pytest.approx(1000 / ms_per_image, rel=0.02)


def test_console_command_reports_errors(tmp_path):
    result = run_cli(
        "infer",
        "--model",
        tmp_path / "m.tflite",
        "--images",
        tmp_path,
        "--output_dir",
        tmp_path / "out",
        check=False,
    )
    assert result.returncode == 1
    assert f"{tmp_path}: folder holds no images" in result.stderr


def test_find_images_accepts_a_file_a_folder_and_a_glob(image_folder):
    assert find_images(image_folder / "a.png") == [image_folder / "a.png"]
    assert [path.name for path in find_images(image_folder)] == [
        "a.png",
        "b_doubled.png",
        "c_wide.jpg",
        "d_broken.jpg",
    ]
    assert [path.name for path in find_images(f"{image_folder}/*.jpg")] == [
        "c_wide.jpg",
        "d_broken.jpg",
    ]


def test_drawing_outlines_each_box_in_its_class_colour():
    image = np.full((200, 240, 3), 255, np.uint8)
    boxes = np.array([[20, 20, 80, 100], [120, 130, 190, 230]], np.float32)
    drawn = draw_detections(image, boxes, [1, 2], [0.9, 0.5], LABEL_MAP)
    assert (image == 255).all()  # the input is left alone
    assert tuple(drawn[80, 60]) == class_colour(1)  # bottom edges
    assert tuple(drawn[190, 180]) == class_colour(2)
    assert class_colour(1) != class_colour(2)
    assert (drawn[40:75, 30:90] == 255).all()  # inside the first box
    assert (drawn[5:20, 20:60] != 255).any()  # its caption, above it
