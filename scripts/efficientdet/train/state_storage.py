"""A run's model_dir kept in remote storage, for machines that share no file system (the
workflow's `--default-storage-provider`): pulled before training, pushed after every epoch, so
that a job started anywhere resumes where the last one stopped, and the checkpoints are there
for the evaluation and export jobs.

The storage is reached through the Snakemake storage plugin that the workflow itself uses
(snakemake-storage-plugin-s3, -gcs, ...). The workflow passes its name and settings (which
hold credentials) in the environment variable below, never on a command line.
"""

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from efficientdet.errors import UserError

log = logging.getLogger(__name__)

ENVIRONMENT = "EFFICIENTDET_STORAGE"


def storage_provider():
    """The storage provider that EFFICIENTDET_STORAGE names: {"provider": ..., "settings": ...}."""
    described = os.environ.get(ENVIRONMENT)
    if not described:
        raise UserError(
            f"--state_url needs the environment variable {ENVIRONMENT} (the storage plugin and "
            "its settings, as JSON); the workflow sets it when run with "
            "--default-storage-provider"
        )
    described = json.loads(described)
    try:
        from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

        plugin = StoragePluginRegistry().get_plugin(described["provider"])
    except Exception as error:
        raise UserError(
            f"--state_url: the storage plugin {described['provider']!r} does not load in this "
            f"environment ({error}); install snakemake-storage-plugin-{described['provider']} "
            "where training runs"
        ) from None
    settings = plugin.settings_cls(**described["settings"]) if plugin.settings_cls else None
    return plugin.storage_provider(
        # Unused: every object is given its place in model_dir.
        local_prefix=Path(tempfile.gettempdir()),
        logger=log,
        settings=settings,
        keep_local=True,
        retrieve=True,
    )


class StateStorage:
    """model_dir mirrored at `url`: pull() fetches what is stored, push() stores every file
    added or changed since and removes those deleted (old checkpoints beyond keep_checkpoints).

    The stored files are listed in MANIFEST, stored last, so that pull() needs nothing of a
    plugin but reading and writing single objects.
    """

    MANIFEST = ".stored-files.json"

    def __init__(self, model_dir, url, provider):
        self.model_dir = Path(model_dir)
        self.url = url.rstrip("/")
        self.provider = provider
        self.stored = {}  # relative path -> (size, mtime) as stored

    def _object(self, relative):
        storage_object = self.provider.object(f"{self.url}/{relative}")
        storage_object.set_local_path(self.model_dir / relative)
        return storage_object

    def _local_files(self):
        files = {}
        for path in self.model_dir.rglob("*"):
            relative = path.relative_to(self.model_dir)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                files[relative.as_posix()] = (path.stat().st_size, path.stat().st_mtime)
        return files

    @contextlib.contextmanager
    def _reporting(self, doing):
        """Turns a failure of the storage (unreachable, refused, ...) into an error naming it."""
        try:
            yield
        except Exception as error:
            raise UserError(
                f"{self.url}: cannot {doing} the run's state ({type(error).__name__}: {error})"
            ) from error

    def pull(self):
        """Makes model_dir a copy of what is stored: empty where nothing is (a run deleted from
        the storage starts over, whatever an earlier job left on this machine)."""
        shutil.rmtree(self.model_dir, ignore_errors=True)
        self.model_dir.mkdir(parents=True)
        manifest = self._object(self.MANIFEST)
        with self._reporting("fetch"):
            if not manifest.exists():
                return
            manifest.retrieve_object()
            for name in json.loads(manifest.local_path().read_text()):
                (self.model_dir / name).parent.mkdir(parents=True, exist_ok=True)
                self._object(name).retrieve_object()
        self.stored = self._local_files()
        log.info("%s: retrieved the run's state from %s", self.model_dir, self.url)

    def push(self):
        files = self._local_files()
        changed = [name for name, stamp in files.items() if self.stored.get(name) != stamp]
        deleted = [name for name in self.stored if name not in files]
        if not changed and not deleted:
            return
        manifest = self._object(self.MANIFEST)
        manifest.local_path().write_text(json.dumps(sorted(files)))
        with self._reporting("store"):
            for name in changed:
                self._object(name).store_object()
            manifest.store_object()
            for name in deleted:
                self._object(name).remove()
        self.stored = files
        log.info("%s: stored %d files, removed %d", self.url, len(changed), len(deleted))
