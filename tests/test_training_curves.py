"""`efficientdet training_curves` on history.csv files like those a run writes."""

import cv2
import pandas as pd

from conftest import run_cli


def test_plots_a_history_with_validation_losses(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "step": [10, 20, 30],
            "loss": [3.0, 2.0, 1.5],
            "class_loss": [1.1, 0.8, 0.6],
            "box_loss": [0.02, 0.015, 0.01],
            "l2_loss": [1.2, 1.2, 1.1],
            "learning_rate": [0.002, 0.001, 0.0],
            "val_loss": [2.9, 2.1, 1.7],
        }
    )
    history.to_csv(tmp_path / "history.csv", index=False)
    run_cli(
        "training_curves",
        "--history",
        tmp_path / "history.csv",
        "--output",
        tmp_path / "curves.png",
    )
    image = cv2.imread(str(tmp_path / "curves.png"))
    assert image is not None
    height, width = image.shape[:2]
    assert width > 4 * height  # five panels side by side: four losses and the learning rate


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
