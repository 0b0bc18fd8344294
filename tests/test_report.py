"""`snakemake --report`, the default target and failed-job logs on the bundled sample."""

import re

from conftest import REPO, run_snakemake
from report_helpers import report_categories, reported_files

RUN = "tiny"
DATA = "results/sample"


def test_report_before_anything_ran_says_what_to_run(workdir):
    result = run_snakemake(workdir, "--report", workdir / "report.html", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "nothing to report yet" in output and "snakemake --cores" in output
    assert not (workdir / "report.html").exists()


def test_failed_job_shows_its_error_in_snakemake_output(workdir):
    (workdir / "resources" / "sample-voc.zip").write_bytes(b"not a zip archive")
    result = run_snakemake(
        workdir, "--workflow-profile", REPO / "profiles" / "local", "tfrecords", check=False
    )
    assert result.returncode != 0
    log = (workdir / "logs" / "sample" / "unpack.log").read_text().strip().splitlines()
    assert "resources/sample-voc.zip" in log[-1]  # the error, naming the archive, ends the log
    assert log[-1] in result.stdout + result.stderr


def test_report_of_a_run_without_training_shows_the_data_stage(workdir):
    run_snakemake(workdir, "tfrecords", "dataset_stats", "inspect")
    # The default target goes on from there to every later stage.
    planned = run_snakemake(workdir, "--dry-run").stdout
    jobs = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", planned, re.MULTILINE))
    later = {"train", "training_curves", "inspect_pipeline", "evaluate", "export", "export_report"}
    assert later | {"infer"} <= jobs
    assert "dataset_stats" not in jobs
    run_snakemake(workdir, "--report", workdir / "report.zip")

    categories = report_categories(workdir / "report.zip")
    assert set(categories) == {"Data"}
    data = reported_files(categories, "Data")
    expected = {f"{DATA}/validation_report.txt"} | {
        f"{DATA}/stats/{name}.png" for name in ("class_counts", "objects_per_image", "box_sizes")
    }
    assert expected <= data
    for split in ("train", "val"):
        drawn = {path for path in data if path.startswith(f"{DATA}/inspect/{split}/")}
        images = len((workdir / DATA / "splits" / f"{split}.txt").read_text().split())
        assert len(drawn) == min(16, images)
