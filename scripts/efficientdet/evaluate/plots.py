"""Plots of evaluations: precision-recall curves of one checkpoint, metrics across checkpoints."""

from pathlib import Path

from matplotlib.figure import Figure

from efficientdet.atomic import atomic_output

MAX_CLASSES_IN_LEGEND = 20


def plot_pr_curves(evaluation, path, title):
    """Per-class PR curves at IoU 0.5 and the class-mean curves at IoU 0.5, 0.75, 0.5:0.95."""
    figure = Figure(figsize=(8, 6), layout="constrained")
    axes = figure.add_subplot()
    recall = evaluation.recall_thresholds
    at_50 = evaluation.precision[_iou_index(evaluation, 0.5)]
    # [iou, recall, class] -> [recall, iou x class]: every (IoU, class) pair as one column.
    all_ious = evaluation.precision.transpose(1, 0, 2).reshape(len(recall), -1)
    for index, row in enumerate(evaluation.per_class):
        if row["AP50"] is not None:
            axes.plot(
                recall,
                at_50[:, index],
                linewidth=1,
                alpha=0.6,
                label=f"{row['name']} (AP50 {row['AP50']:.3f})",
            )
    for label, precision, style in (
        ("mean, IoU 0.5", at_50, "-"),
        ("mean, IoU 0.75", evaluation.precision[_iou_index(evaluation, 0.75)], "--"),
        ("mean, IoU 0.5:0.95", all_ious, ":"),
    ):
        mean = _class_mean(precision)
        if mean is not None:
            axes.plot(recall, mean, "k" + style, linewidth=2.5, label=label)
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    axes.grid(alpha=0.3)
    if len(evaluation.per_class) <= MAX_CLASSES_IN_LEGEND:
        axes.legend(fontsize="small", loc="upper right")
    _save(figure, path)


def plot_metrics_by_step(table, path, title):
    """Line plot of AP, AP50, AP75 and AR100 (and the VOC mAP50s when present) against the step."""
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for column in ("AP", "AP50", "AP75", "AR100", "VOC_AP50", "VOC07_AP50"):
        if column in table and table[column].notna().any():
            axes.plot(table["step"], table[column], marker="o", label=column)
    axes.set(xlabel="training step", ylabel="metric", ylim=(0, 1.02), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    _save(figure, path)


def _iou_index(evaluation, iou):
    return int(abs(evaluation.iou_thresholds - iou).argmin())


def _class_mean(precision):
    """Mean over the classes with ground truth, per recall threshold ([recall, class] input)."""
    defined = (precision > -1).all(axis=0)
    return precision[:, defined].mean(axis=1) if defined.any() else None


def _save(figure, path):
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format=Path(path).suffix.lstrip(".") or "png", dpi=100)
