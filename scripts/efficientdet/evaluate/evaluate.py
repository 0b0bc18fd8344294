"""`efficientdet metrics`: gather the per-checkpoint evaluations of a run into one table and plot.

Every `ckpt-{step}.json` in the evaluation folder counts, also those whose checkpoint was
deleted since (keep-last-N), so the table keeps the history of the run.
"""

import json
import logging
from pathlib import Path

import pandas as pd

from efficientdet.atomic import atomic_output
from efficientdet.errors import UserError
from efficientdet.evaluate.coco import METRIC_NAMES
from efficientdet.evaluate.plots import plot_metrics_by_step

log = logging.getLogger(__name__)
VOC_METRICS = ("VOC_AP50", "VOC07_AP50")


def add_arguments(parser):
    parser.add_argument(
        "--eval_dir",
        required=True,
        type=Path,
        help="folder holding the ckpt-{step}.json evaluations of one run",
    )
    parser.add_argument("--output", required=True, type=Path, help="CSV table to write")
    parser.add_argument("--plot", required=True, type=Path, help="PNG plot of metrics vs step")


def run(args):
    table = metrics_table(args.eval_dir)
    with atomic_output(args.output) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6f")
    plot_metrics_by_step(table, args.plot, title=f"{args.eval_dir.parent.name}: COCO metrics")
    best = table.loc[table["AP"].fillna(-1).idxmax()]
    log.info(
        "%d evaluations; best AP %.4f at step %d -> %s",
        len(table),
        best["AP"],
        best["step"],
        args.output,
    )


def metrics_table(eval_dir):
    """One row per evaluation, sorted by step: the summary metrics, then per-class COCO AP and
    both VOC AP50s."""
    paths = sorted(Path(eval_dir).glob("ckpt-*.json"))
    if not paths:
        raise UserError(f"{eval_dir}: no ckpt-*.json evaluations to gather")
    table = pd.DataFrame([_row(path) for path in paths]).sort_values("step", kind="stable")
    return table.reset_index(drop=True)


def _row(path):
    try:
        evaluation = json.loads(path.read_text())
        row = {"step": int(evaluation["step"]), "num_images": evaluation["num_images"]}
        row.update({name: evaluation["metrics"][name] for name in (*METRIC_NAMES, *VOC_METRICS)})
        for metric in ("AP", *VOC_METRICS):
            row.update({f"{metric}/{c['name']}": c[metric] for c in evaluation["per_class"]})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path}: not an evaluation written by `efficientdet evaluate` ({error!r})"
        ) from error
    return row
