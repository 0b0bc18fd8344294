"""Safe extraction of a dataset zip.

Every entry is checked before anything is written: no absolute paths or drive letters, no `..`
component (zip-slip), no symbolic links, no encrypted entries, and a limit on the total
uncompressed size (also enforced on the bytes actually inflated, whatever the headers claim).
"""

import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from efficientdet.errors import UserError

_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


def _entry_path(archive, info):
    """The entry's relative path, or UserError when it is unsafe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise UserError(f"{archive}: entry {info.filename!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UserError(
            f"{archive}: entry {info.filename!r} escapes the extraction folder (zip-slip)"
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UserError(f"{archive}: entry {info.filename!r} is a symbolic link; links are refused")
    if info.flag_bits & 0x1:
        raise UserError(f"{archive}: entry {info.filename!r} is encrypted")
    return PurePosixPath(*parts) if parts else None


def _checked_entries(archive, zip_file, max_bytes):
    entries = []
    total = 0
    for info in zip_file.infolist():
        path = _entry_path(archive, info)
        if path is None or info.is_dir():
            continue
        total += info.file_size
        if total > max_bytes:
            raise UserError(
                f"{archive}: oversized archive, more than {max_bytes} bytes uncompressed "
                "(raise dataset.max_unpacked_gb if this is expected)"
            )
        entries.append((info, path))
    if not entries:
        raise UserError(f"{archive}: the archive holds no files")
    return entries


def _copy_limited(source, target, budget, archive, name):
    written = 0
    while chunk := source.read(_CHUNK):
        written += len(chunk)
        if written > budget:
            raise UserError(f"{archive}: entry {name!r} inflates beyond the size limit")
        target.write(chunk)
    return written


def safe_extract(archive, destination, max_bytes):
    """Extracts the zip `archive` into the existing empty folder `destination`."""
    archive = Path(archive)
    try:
        with zipfile.ZipFile(archive) as zip_file:
            entries = _checked_entries(archive, zip_file, max_bytes)
            budget = max_bytes
            for info, path in entries:
                target = Path(destination, *path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zip_file.open(info) as source, open(target, "wb") as stream:
                    budget -= _copy_limited(source, stream, budget, archive, info.filename)
    except zipfile.BadZipFile as error:
        raise UserError(f"{archive}: corrupt or not a zip archive ({error})") from None
    except (zlib.error, EOFError, NotImplementedError) as error:
        raise UserError(f"{archive}: corrupt zip archive ({error})") from None
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
        raise UserError(f"{archive}: entries clash as file and folder ({error.filename})") from None
