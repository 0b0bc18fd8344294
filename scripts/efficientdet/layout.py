"""Where the workflow's files live, spelled once for the rules (workflow/rules/common.smk) and
the commands:

    results/{dataset}/   DatasetFiles: what the data stage makes of one dataset
    models/{run}/        RunFiles.model_dir: the training state of one run
    results/{run}/       RunFiles.results: what is made from that run (evaluations, predictions)

Commands given files outside this layout (another tool's records, an official checkpoint) take
them as they are; the layout only says where to look when a flag is left out.
"""

import dataclasses
import re
from pathlib import Path

SPLITS = ("train", "val")
# Shard file names; the rule's output pattern uses the same template with wildcards.
SHARD_NAME = "{split}-{shard}-of-{num_shards}.tfrecord"
# One training checkpoint (tf.train.CheckpointManager's naming) and its evaluation.
CHECKPOINT_NAME = "ckpt-{step}"
EVALUATION_NAME = "ckpt-{step}.json"
_CHECKPOINT_INDEX = re.compile(r"ckpt-(\d+)\.index")
_EVALUATION = re.compile(r"ckpt-(\d+)\.json")


def shard_name(split, index, count):
    return SHARD_NAME.format(split=split, shard=f"{index:05d}", num_shards=f"{count:05d}")


@dataclasses.dataclass(frozen=True)
class DatasetFiles:
    """results/{dataset}/: the unpacked archive, the validated table, splits and records."""

    root: Path

    @classmethod
    def named(cls, dataset, results="results"):
        return cls(Path(results) / dataset)

    @classmethod
    def of_records(cls, pattern):
        """The dataset folder of records like results/{dataset}/tfrecords/train-*.tfrecord."""
        return cls(Path(pattern).parent.parent)

    @property
    def voc(self):
        return self.root / "voc"

    @property
    def annotations(self):
        return self.root / "annotations.csv"

    @property
    def label_map(self):
        return self.root / "label_map.yaml"

    @property
    def validation_report(self):
        return self.root / "validation_report.txt"

    def split_list(self, split):
        return self.root / "splits" / f"{split}.txt"

    @property
    def tfrecords(self):
        return self.root / "tfrecords"

    def shard(self, split, index, count):
        return self.tfrecords / shard_name(split, index, count)

    @property
    def val_coco(self):
        return self.root / "val_coco.json"

    @property
    def stats(self):
        return self.root / "stats"

    @property
    def stats_summary(self):
        return self.stats / "summary.yaml"

    def inspect(self, split):
        return self.root / "inspect" / split


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """models/{run}/ (training state, which outlives failed jobs) and results/{run}/."""

    model_dir: Path
    results: Path | None = None  # None for a run trained outside the workflow

    @classmethod
    def named(cls, run, models="models", results="results"):
        return cls(Path(models) / run, Path(results) / run)

    @classmethod
    def of_model_dir(cls, model_dir):
        """The run training into `model_dir`; its results sit in results/{run} beside it."""
        model_dir = Path(model_dir)
        return cls(model_dir, model_dir.parent.parent / "results" / model_dir.name)

    @property
    def checkpoints(self):
        return self.model_dir / "checkpoints"

    def checkpoint(self, step):
        return self.checkpoints / CHECKPOINT_NAME.format(step=step)

    def checkpoint_steps(self):
        return checkpoint_steps(self.checkpoints)

    def checkpoint_files(self):
        """Names of the files in checkpoints/, sorted."""
        folder = self.checkpoints
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []

    @property
    def description(self):
        """model.yaml: enough to rebuild the model and to refuse a mismatched resume."""
        return self.model_dir / "model.yaml"

    @property
    def history(self):
        return self.model_dir / "history.csv"

    @property
    def tensorboard(self):
        return self.model_dir / "logs"

    @property
    def export(self):
        return self.model_dir / "export"

    @property
    def done(self):
        return self.results / "train.done.json"

    @property
    def eval_dir(self):
        return self.results / "eval"

    def evaluation(self, step):
        return self.eval_dir / EVALUATION_NAME.format(step=step)

    def evaluated_steps(self):
        """Steps of the evaluations made so far, also of checkpoints deleted since."""
        return _steps(self.eval_dir, _EVALUATION)

    @property
    def metrics_table(self):
        return self.eval_dir / "metrics.csv"

    @property
    def metrics_plot(self):
        return self.eval_dir / "metrics.png"

    @property
    def training_curves(self):
        return self.results / "training_curves.png"

    @property
    def reported_description(self):
        """A copy of the run's model.yaml among its results, for the report."""
        return self.results / "model.yaml"

    def inspect_pipeline(self, view):
        """Examples drawn from the input pipeline: view "train" (augmented) or "eval"."""
        return self.results / "inspect_pipeline" / view

    @property
    def export_report(self):
        """What the report shows of the export: formats, PR curves, per-class AP."""
        return self.results / "export"

    @property
    def predictions(self):
        return self.results / "predictions"


def checkpoint_steps(folder):
    """Steps of the ckpt-{step} checkpoints in `folder`, in order (each has its .index file)."""
    return _steps(folder, _CHECKPOINT_INDEX)


def checkpoint_steps_in(names):
    """Steps of the checkpoints among file `names`, in order."""
    return _steps_in(names, _CHECKPOINT_INDEX)


def _steps(folder, pattern):
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return _steps_in((path.name for path in folder.iterdir()), pattern)


def _steps_in(names, pattern):
    return sorted(int(match.group(1)) for match in map(pattern.fullmatch, names) if match)


def run_of_checkpoint(prefix):
    """The run that wrote checkpoint models/{run}/checkpoints/ckpt-N, or None for others."""
    prefix = Path(prefix)
    if prefix.parent.name != "checkpoints":
        return None
    return RunFiles.of_model_dir(prefix.parent.parent)
