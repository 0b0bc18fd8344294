"""`efficientdet training_curves` on history.csv files like those a run writes."""

import cv2
import pandas as pd

from conftest import run_cli

MATPLOTLIB_BLUE, MATPLOTLIB_ORANGE = (31, 119, 180), (255, 127, 14)


def has_colour(image_bgr, rgb, tolerance=10):
    return bool((abs(image_bgr[..., ::-1].astype(int) - rgb).max(axis=-1) <= tolerance).any())


def test_plots_the_losses_with_their_validation_losses_when_recorded(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "step": [10, 20, 30],
            "loss": [3.0, 2.0, 1.5],
            "class_loss": [1.1, 0.8, 0.6],
            "box_loss": [0.02, 0.015, 0.01],
            "l2_loss": [1.2, 1.2, 1.1],
            "learning_rate": [0.002, 0.001, 0.0],
        }
    )
    plots = {}
    for name, table in (("train", history), ("traineval", history.assign(val_loss=[2.9, 2, 1.7]))):
        table.to_csv(tmp_path / f"{name}.csv", index=False)
        run_cli(
            "training_curves",
            "--history",
            tmp_path / f"{name}.csv",
            "--output",
            tmp_path / f"{name}.png",
        )
        plots[name] = cv2.imread(str(tmp_path / f"{name}.png"))
    # Validation is matplotlib's second colour (orange): only where history has val_* columns.
    assert not has_colour(plots["train"], MATPLOTLIB_ORANGE)
    assert has_colour(plots["traineval"], MATPLOTLIB_ORANGE)
    assert has_colour(plots["train"], MATPLOTLIB_BLUE)


def test_a_history_without_epochs_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,step,loss,learning_rate\n")
    result = run_cli(
        "training_curves",
        "--history",
        tmp_path / "history.csv",
        "--output",
        tmp_path / "curves.png",
        check=False,
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"{tmp_path / 'history.csv'}: no epoch recorded yet" in last_line
    assert not (tmp_path / "curves.png").exists()


def test_the_run_description_is_copied_for_the_report(tmp_path):
    pd.DataFrame({"step": [10], "loss": [1.0], "learning_rate": [0.01]}).to_csv(
        tmp_path / "history.csv", index=False
    )
    description = "model_name: efficientdet-d0\nimage_size: [128, 128]\n"
    (tmp_path / "model.yaml").write_text(description)
    arguments = ["training_curves", "--history", tmp_path / "history.csv"]
    arguments += ["--output", tmp_path / "curves.png", "--description", tmp_path / "model.yaml"]
    run_cli(*arguments, "--description_output", tmp_path / "out" / "model.yaml")
    assert (tmp_path / "out" / "model.yaml").read_text() == description

    (tmp_path / "model.yaml").write_text("model_name: [unclosed\n")
    result = run_cli(*arguments, "--description_output", tmp_path / "bad.yaml", check=False)
    assert result.returncode == 1 and "cannot read the run's description" in result.stderr
    assert not (tmp_path / "bad.yaml").exists()
