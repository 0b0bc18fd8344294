"""`efficientdet training_curves`: plot a run's history.csv (losses, learning rate, val loss).

One panel per quantity against the training step: the training losses (total, class, box, L2)
with their validation counterparts where `traineval` computed them, and the learning rate.
With `--description`, the run's model.yaml is copied beside the plot for the report (the training
state in models/{run}/ is not a workflow output, so the report cannot show it from there).
"""

import logging
from pathlib import Path

import pandas as pd
import yaml
from matplotlib.figure import Figure

from efficientdet.atomic import atomic_output
from efficientdet.errors import UserError

LOSSES = ("loss", "class_loss", "box_loss", "l2_loss")
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument(
        "--history",
        required=True,
        type=Path,
        help="history.csv of a run (models/{run}/history.csv)",
    )
    parser.add_argument("--output", required=True, type=Path, help="PNG to write")
    parser.add_argument("--description", type=Path, help="the run's model.yaml to copy")
    parser.add_argument("--description_output", type=Path, help="where to copy it")


def run(args):
    history = read_history(args.history)
    plot_history(history, args.output, title=args.history.parent.name)
    log.info("%d epochs, last step %d -> %s", len(history), history["step"].iloc[-1], args.output)
    if args.description:
        copy_description(args.description, args.description_output)


def copy_description(path, output):
    try:
        text = path.read_text()
        yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{path}: cannot read the run's description ({error})") from None
    with atomic_output(output) as temporary:
        temporary.write_text(text)


def read_history(path):
    try:
        history = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{path}: cannot read the training history ({error})") from None
    missing = [column for column in ("step", "loss", "learning_rate") if column not in history]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)}; not a history.csv of a run")
    if history.empty:
        raise UserError(f"{path}: no epoch recorded yet")
    return history.sort_values("step")


def plot_history(history, path, title):
    panels = [name for name in LOSSES if name in history] + ["learning_rate"]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.4 * rows), layout="constrained")
    figure.suptitle(f"{title}: training history")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, name in zip(grid, panels):
        axes.plot(history["step"], history[name], marker="o", label="train")
        if f"val_{name}" in history and history[f"val_{name}"].notna().any():
            axes.plot(history["step"], history[f"val_{name}"], marker="s", label="validation")
            axes.legend(fontsize="small")
        axes.set(xlabel="step", title=name)
        axes.grid(alpha=0.3)
    for axes in grid[len(panels) :]:
        axes.set_visible(False)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
