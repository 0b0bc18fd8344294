"""The data stage as Snakemake runs it, in a temporary directory, on the bundled sample."""

import functools
import hashlib
import http.server
import os
import threading

import pytest
import yaml

from conftest import SAMPLE_ZIP, planned_jobs, run_snakemake
from data_helpers import write_zip
from efficientdet.data.dataset_stats import OUTPUTS as STATS_OUTPUTS


def _configure(workdir, **dataset):
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["dataset"].update(dataset)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _mtimes(folder):
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_tfrecords_stats_and_inspect_then_nothing_to_do(workdir):
    _configure(workdir, images_per_shard=40, inspect_images=4)
    run_snakemake(workdir, "tfrecords", "dataset_stats", "inspect")
    data = workdir / "results" / "sample"
    assert sorted(p.name for p in (data / "tfrecords").iterdir()) == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
        "val-00000-of-00002.tfrecord",
        "val-00001-of-00002.tfrecord",
    ]
    assert (data / "val_coco.json").is_file()
    assert sorted(path.name for path in (data / "stats").iterdir()) == sorted(STATS_OUTPUTS)
    assert (
        yaml.safe_load((data / "stats" / "summary.yaml").read_text())["max_objects_per_image"] == 3
    )
    assert [len(list((data / "inspect" / s).glob("*.jpg"))) for s in ("train", "val")] == [4, 4]
    assert (data / "validation_report.txt").read_text().startswith("# Validation report")
    assert (workdir / "logs" / "sample" / "shard" / "val-00001-of-00002.log").is_file()
    before = _mtimes(workdir / "results")

    again = run_snakemake(workdir, "tfrecords", "dataset_stats", "inspect")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert _mtimes(workdir / "results") == before

    # The local archive was read where it lies, not copied; a newer one is unpacked again.
    assert not (workdir / "resources" / "datasets").exists()
    archive = workdir / "resources" / SAMPLE_ZIP.name
    os.utime(archive, (archive.stat().st_atime, archive.stat().st_mtime + 10))
    assert planned_jobs(run_snakemake(workdir, "tfrecords", "-n"))["unpack"] == 1


@pytest.mark.parametrize("broken", [False, True], ids=["succeeding", "failing"])
def test_a_run_ends_with_its_jobs_not_a_scheduler_timespan_later(workdir, broken):
    # Snakemake's scheduler leaves a Timer of the rate limiter's timespan running at the end;
    # the workflow cancels it, so with a 10-minute timespan the run still ends at once.
    if broken:
        (workdir / "resources" / SAMPLE_ZIP.name).write_bytes(b"not a zip")
    result = run_snakemake(
        workdir, "results/sample/voc", "--max-jobs-per-timespan", "10/10m", check=False, timeout=60
    )
    assert result.returncode == int(broken), result.stderr[-3000:]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        self.server.requests.append(self.command)


@pytest.fixture
def http_server(tmp_path):
    """Serves a folder holding the sample zip on 127.0.0.1; yields (base URL, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "voc.zip").write_bytes(SAMPLE_ZIP.read_bytes())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served))
    )
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    server.shutdown()
    thread.join()


def test_http_download_with_sha256_is_not_repeated(workdir, http_server):
    base_url, requests = http_server
    sha256 = hashlib.sha256(SAMPLE_ZIP.read_bytes()).hexdigest()
    _configure(workdir, name="web", url=f"{base_url}/voc.zip", sha256=sha256)
    target = "resources/datasets/web/voc.zip"
    run_snakemake(workdir, target)
    assert (workdir / target).read_bytes() == SAMPLE_ZIP.read_bytes()
    assert requests.count("GET") == 1

    again = run_snakemake(workdir, target)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert requests.count("GET") == 1


@pytest.mark.parametrize(
    "dataset, message",
    [
        ({"name": "x; rm -rf ~"}, "does not match"),
        ({"url": "ftp://example.org/voc.zip"}, "does not match"),
        ({"label_map": {"one": "dog"}}, "does not match"),
    ],
)
def test_bad_config_values_are_refused_before_anything_runs(workdir, dataset, message):
    _configure(workdir, **dataset)
    result = run_snakemake(workdir, "tfrecords", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output and list(dataset)[0] in output
    assert not (workdir / "results").exists() and not (workdir / "resources" / "datasets").exists()


def test_a_list_entry_failing_its_sha256_names_the_archive(workdir):
    more = write_zip(workdir / "resources" / "more.zip", {"more/a.txt": b"a"})
    wrong = hashlib.sha256(b"something else").hexdigest()
    _configure(
        workdir,
        url=[f"resources/{SAMPLE_ZIP.name}", {"url": "resources/more.zip", "sha256": wrong}],
    )
    result = run_snakemake(workdir, "tfrecords", check=False)
    assert result.returncode != 0
    log = (workdir / "logs" / "sample" / "download" / "more.zip.log").read_text()
    assert (
        f"resources/more.zip: sha256 mismatch, got {hashlib.sha256(more.read_bytes()).hexdigest()}"
        in log
    )
    assert not (workdir / "resources" / "datasets" / "sample" / "more.zip").exists()
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    "dataset, message",
    [
        (
            {"url": ["a/voc.zip", "b/voc.zip"]},
            "dataset.url: two archives named voc.zip (a/voc.zip and b/voc.zip)",
        ),
        ({"url": ["a.zip"], "sha256": "0" * 64}, "dataset.sha256 is for a single url"),
        ({"splits": {"train": ["VOC2007/trainval"]}}, "'val' is a required property"),
    ],
)
def test_bad_archive_lists_and_splits_are_refused(workdir, dataset, message):
    _configure(workdir, **dataset)
    result = run_snakemake(workdir, "tfrecords", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources" / "datasets").exists()
