"""`efficientdet download`: fetch or copy a dataset archive, checking its sha256.

In the workflow, Snakemake's storage plugins fetch http(s)/s3/gs URLs (and decide whether the
source changed), so this command receives a local file. Run by hand it also fetches http(s)
URLs itself.
"""

import hashlib
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from efficientdet.atomic import atomic_output
from efficientdet.errors import UserError

SCHEMES = ("http", "https", "s3", "gs", "file")
_CHUNK = 1 << 20
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument(
        "--source",
        required=True,
        help="local path, file:// URL or http(s):// URL of the dataset zip",
    )
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of the file (hex)")
    parser.add_argument("--output", required=True, type=Path, help="where to write the zip")


def _open_source(source):
    url = urllib.parse.urlsplit(source)
    scheme = url.scheme.lower()
    if scheme and scheme not in SCHEMES:
        raise UserError(
            f"{source}: unsupported URL scheme {scheme!r} "
            f"(use {', '.join(SCHEMES)} or a local path)"
        )
    if scheme in ("s3", "gs"):
        raise UserError(
            f"{source}: {scheme}:// sources are fetched by Snakemake's storage plugin; "
            "run the workflow, or pass the fetched file"
        )
    if scheme in ("http", "https"):
        try:
            return urllib.request.urlopen(source, timeout=60)
        except (urllib.error.URLError, OSError) as error:
            raise UserError(f"{source}: download failed ({error})") from None
    path = Path(urllib.parse.unquote(url.path)) if scheme == "file" else Path(source)
    try:
        return open(path, "rb")
    except OSError as error:
        raise UserError(f"{path}: cannot read the dataset archive ({error.strerror})") from None


def run(args):
    expected = args.sha256.lower() if args.sha256 else None
    digest = hashlib.sha256()
    with atomic_output(args.output) as temporary:
        with _open_source(args.source) as source, open(temporary, "wb") as target:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                target.write(chunk)
        if expected and digest.hexdigest() != expected:
            raise UserError(
                f"{args.source}: sha256 mismatch, got {digest.hexdigest()}, expected {expected}"
            )
    log.info("%s -> %s (sha256 %s)", args.source, args.output, digest.hexdigest())
