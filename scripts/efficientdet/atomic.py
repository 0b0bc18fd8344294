"""Write an output under a temporary name and rename it into place only when complete."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path, directory=False):
    """Yields a temporary path beside `path` (a file, or a folder with directory=True).

    On success the temporary path replaces `path`; on any exception it is removed, so a failed
    command never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(handle)
        temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o755 if directory else 0o644)
        if directory:
            shutil.rmtree(path, ignore_errors=True)
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
