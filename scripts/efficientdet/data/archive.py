"""Safe extraction of dataset archives: zip, and tar (plain, gzip, bzip2 or xz compressed).

Several archives can be unpacked into one folder, side by side: the official VOC2007 trainval
and test tars both fill VOCdevkit/VOC2007/. A file that two archives both hold must be the same
in both; otherwise it is an error naming the archives and the entry.

Every entry is checked before it is written: no absolute paths or drive letters, no `..`
component, no links, devices or pipes, no encrypted zip entries (tar entries also pass the
standard library's `data` extraction filter), and a limit on the total size enforced on the
bytes actually written, whatever the headers claim. The format is read from the file's first
bytes, not its name.

A zip's files are written by several processes at once (its central directory lets each read its
own part); a tar is read front to back by one.
"""

import bz2
import concurrent.futures
import functools
import gzip
import itertools
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from efficientdet.errors import UserError

_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
_ENTRIES_PER_PROCESS = 1000  # fewer are written faster by one process than by starting another
_COMPRESSED_TAR = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}


def _entry_path(archive, name):
    """The entry's relative path (None for the archive root), or UserError when it is unsafe."""
    name = name.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise UserError(f"{archive}: entry {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UserError(f"{archive}: entry {name!r} escapes the extraction folder (zip-slip)")
    return PurePosixPath(*parts) if parts else None


class Extraction:
    """Unpacks archives one after the other into the existing folder `destination`, all of them
    together within `max_bytes`."""

    def __init__(self, destination, max_bytes, processes=1):
        self.destination = Path(destination)
        self.max_bytes = max_bytes
        self.processes = processes
        self.new_files = _NewFiles(destination)
        self.budget = max_bytes
        self.origin = {}  # relative path -> the archive that wrote it

    def add(self, archive):
        archive = Path(archive)
        try:
            with open(archive, "rb") as stream:
                is_zip = stream.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
        except OSError as error:
            raise UserError(f"{archive}: cannot read the archive ({error.strerror})") from None
        if is_zip:
            self._add_zip(archive)
        else:
            self._add_tar(archive)

    def _add_zip(self, archive):
        try:
            with zipfile.ZipFile(archive) as zip_file:
                entries = self._checked_zip_entries(archive, zip_file)
                unpacked = set(self.origin)
                fresh, repeated = [], []
                for info, path in entries:
                    (repeated if path in unpacked else fresh).append((info, path))
                    unpacked.add(path)
                self._write_in_parts(archive, fresh)
                for info, path in repeated:
                    with zip_file.open(info) as source:
                        self._write(archive, info.filename, path, source)
        except zipfile.BadZipFile as error:
            raise UserError(f"{archive}: corrupt or not a zip archive ({error})") from None
        except (zlib.error, EOFError, NotImplementedError) as error:
            raise UserError(f"{archive}: corrupt zip archive ({error})") from None

    def _write_in_parts(self, archive, entries):
        """Writes the zip entries, none of them already unpacked, by up to `processes` processes
        that each take a run of entries of about equal size."""
        parts = min(self.processes, max(1, len(entries) // _ENTRIES_PER_PROCESS))
        if parts == 1:
            _write_zip_entries(archive, self.destination, entries)
        else:
            sizes = itertools.accumulate(info.file_size for info, _ in entries)
            total = sum(info.file_size for info, _ in entries) or 1
            runs = itertools.groupby(
                zip(entries, sizes), key=lambda item: min(parts - 1, item[1] * parts // total)
            )
            write = functools.partial(_write_zip_entries, archive, self.destination)
            with concurrent.futures.ProcessPoolExecutor(parts) as pool:
                list(pool.map(write, ([entry for entry, _ in run] for _, run in runs)))
        for info, path in entries:
            self.budget -= info.file_size
            self.origin[path] = archive.name

    def _checked_zip_entries(self, archive, zip_file):
        """All entries are checked first: the central directory lists them without reading."""
        entries = []
        declared = 0
        for info in zip_file.infolist():
            path = _entry_path(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UserError(
                    f"{archive}: entry {info.filename!r} is a symbolic link; links are refused"
                )
            if info.flag_bits & 0x1:
                raise UserError(f"{archive}: entry {info.filename!r} is encrypted")
            if path is None or info.is_dir():
                continue
            declared += info.file_size
            self._check_size(archive, declared)
            entries.append((info, path))
        if not entries:
            raise UserError(f"{archive}: the archive holds no files")
        return entries

    def _add_tar(self, archive):
        # Entries are checked and written in one pass, front to back, so a compressed tar is
        # decompressed once (a tar has no central directory to check first): a bad entry late
        # in the archive stops the extraction there, and the caller discards the folder.
        files = 0
        member = None
        try:
            with _decompressed(archive) as stream:
                with tarfile.open(fileobj=stream, mode="r:") as tar:
                    for member in tar:
                        path = self._checked_tar_member(archive, member)
                        if path is None or member.isdir():
                            continue
                        self._check_size(archive, member.size)
                        with tar.extractfile(member) as source:
                            self._write(archive, member.name, path, source)
                        files += 1
                # Reading to the end checks the compressed stream's checksum, which tarfile
                # never reaches: it stops at the end-of-archive blocks.
                while stream.read(_CHUNK):
                    pass
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise  # the disk failed, not the archive
            where = f"near entry {member.name!r}" if member else "at its start"
            raise UserError(
                f"{archive}: corrupt, truncated or not a zip or tar archive ({where}: {error})"
            ) from None
        if not files:
            raise UserError(f"{archive}: the archive holds no files")

    def _checked_tar_member(self, archive, member):
        path = _entry_path(archive, member.name)
        if member.issym() or member.islnk():
            raise UserError(
                f"{archive}: entry {member.name!r} is a link (to {member.linkname!r}); "
                "links are refused"
            )
        if not (member.isfile() or member.isdir()):
            raise UserError(
                f"{archive}: entry {member.name!r} is a device or pipe, not a file or folder"
            )
        try:
            tarfile.data_filter(member, str(self.destination))
        except tarfile.FilterError as error:
            raise UserError(f"{archive}: entry {member.name!r} refused ({error})") from None
        return path

    def _check_size(self, archive, declared):
        """Refuses `declared` more bytes before any of them is written."""
        if declared > self.budget:
            raise UserError(
                f"{archive}: oversized archive, more than {self.max_bytes} bytes uncompressed "
                "(raise dataset.max_unpacked_gb if this is expected)"
            )

    def _write(self, archive, name, path, source):
        if path in self.origin:
            target = self.destination.joinpath(*path.parts)
            if not _same_content(source, target):
                raise UserError(
                    f"{archive}: entry {name!r} conflicts with the different {path} "
                    f"unpacked from {self.origin[path]}"
                )
            return
        self.budget -= self.new_files.write(archive, name, path, source, self.budget)
        if self.budget < 0:
            raise UserError(f"{archive}: entry {name!r} inflates beyond the size limit")
        self.origin[path] = archive.name


class _NewFiles:
    """Writes new files under `destination`, making each folder once: at thousands of small
    files, system calls are most of what unpacking costs."""

    def __init__(self, destination):
        self.destination = str(destination)
        self.folders = set()

    def write(self, archive, name, path, source, limit):
        """Copies `source` to the new file `path` (relative), stopping past `limit` bytes; the
        number of bytes written."""
        folder = os.path.join(self.destination, *path.parts[:-1])
        try:
            if folder not in self.folders:
                os.makedirs(folder, exist_ok=True)
                self.folders.add(folder)
            stream = open(os.path.join(folder, path.name), "xb", buffering=0)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
            raise UserError(
                f"{archive}: entry {name!r} clashes as file and folder ({error.filename})"
            ) from None
        written = 0
        with stream:
            while written <= limit and (chunk := source.read(_CHUNK)):
                written += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[stream.write(view) :]
        return written


def _write_zip_entries(archive, destination, entries):
    """Writes the [(ZipInfo, path)] entries of `archive`: one process's part of an extraction.
    Each entry may fill only the size its header declares (the declared sizes were checked
    against the limit)."""
    new_files = _NewFiles(destination)
    with zipfile.ZipFile(archive) as zip_file:
        for info, path in entries:
            with zip_file.open(info) as source:
                written = new_files.write(archive, info.filename, path, source, info.file_size)
            if written > info.file_size:
                raise UserError(
                    f"{archive}: entry {info.filename!r} inflates beyond its declared size"
                )


def _same_content(source, path):
    with open(path, "rb") as existing:
        while True:
            chunk = source.read(_CHUNK)
            if chunk != existing.read(len(chunk)):
                return False
            if not chunk:
                return existing.read(1) == b""


def _decompressed(archive):
    """The archive's bytes, decompressed when its first bytes name gzip, bzip2 or xz."""
    with open(archive, "rb") as stream:
        head = stream.read(6)
    for magic, opener in _COMPRESSED_TAR.items():
        if head.startswith(magic):
            return opener(archive, "rb")
    return open(archive, "rb")


def safe_extract(archives, destination, max_bytes, processes=1):
    """Extracts the zip or tar `archives`, in order, into the existing empty folder
    `destination`, within `max_bytes` in all, by up to `processes` processes."""
    extraction = Extraction(destination, max_bytes, processes)
    for archive in archives:
        extraction.add(archive)
