"""`efficientdet download` on its own: local paths, file:// URLs and http from 127.0.0.1."""

import functools
import hashlib
import http.server
import threading

import pytest

from data_helpers import write_zip
from efficientdet.cli import main


@pytest.fixture
def archive(tmp_path):
    return write_zip(tmp_path / "my data.zip", {"a/b.txt": b"hello"})


def _download(source, output, *extra):
    return main(["download", "--source", str(source), "--output", str(output), *extra])


def test_local_path_and_file_url_with_sha256(tmp_path, archive):
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert _download(archive, tmp_path / "out" / "a.zip", "--sha256", sha256.upper()) == 0
    assert _download(archive.as_uri(), tmp_path / "out" / "b.zip") == 0
    for name in ("a.zip", "b.zip"):
        assert (tmp_path / "out" / name).read_bytes() == archive.read_bytes()


def test_http_url_from_a_local_server(tmp_path, archive):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/my%20data.zip"
        assert _download(url, tmp_path / "out.zip") == 0
        assert (tmp_path / "out.zip").read_bytes() == archive.read_bytes()
        missing = f"http://127.0.0.1:{server.server_address[1]}/missing.zip"
        assert _download(missing, tmp_path / "missing.zip") == 1
        assert not (tmp_path / "missing.zip").exists()
    finally:
        server.shutdown()
        thread.join()


def test_missing_local_file(tmp_path, caplog):
    assert _download(tmp_path / "nope.zip", tmp_path / "out.zip") == 1
    assert "nope.zip: cannot read the dataset archive" in caplog.text
    assert not (tmp_path / "out.zip").exists()
