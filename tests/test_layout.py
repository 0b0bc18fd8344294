"""efficientdet.layout: the one spelling of results/ and models/ that rules and commands share."""

from pathlib import Path

from efficientdet.layout import DatasetFiles, RunFiles, checkpoint_steps, run_of_checkpoint


def test_dataset_files_of_records_is_the_dataset_folder():
    data = DatasetFiles.named("fotos")
    assert data.shard("train", 3, 12) == Path(
        "results/fotos/tfrecords/train-00003-of-00012.tfrecord"
    )
    assert DatasetFiles.of_records("results/fotos/tfrecords/val-*.tfrecord") == data
    assert data.val_coco == Path("results/fotos/val_coco.json")
    assert data.stats_summary == Path("results/fotos/stats/summary.yaml")


def test_checkpoint_steps_are_numeric_and_need_the_index(tmp_path):
    run = RunFiles.named("run", models=tmp_path / "models", results=tmp_path / "results")
    assert run.checkpoint_steps() == []
    run.checkpoints.mkdir(parents=True)
    for name in (
        "ckpt-100.index",
        "ckpt-20.index",
        "ckpt-20.data-00000-of-00001",
        "ckpt-7.data-00000-of-00001",
        "checkpoint",
        "ckpt-x.index",
    ):
        (run.checkpoints / name).touch()
    assert run.checkpoint_steps() == [20, 100] == checkpoint_steps(run.checkpoints)
    assert run.evaluation(20) == tmp_path / "results" / "run" / "eval" / "ckpt-20.json"


def test_run_of_checkpoint_only_for_a_runs_checkpoints():
    run = run_of_checkpoint("models/mine/checkpoints/ckpt-40")
    assert run.model_dir == Path("models/mine") and run.description == Path(
        "models/mine/model.yaml"
    )
    assert run_of_checkpoint("downloads/efficientdet-d0/model") is None
