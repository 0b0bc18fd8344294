"""metadata.json of an export folder: the model, its origin, and a digest of every exported file.

The digests tie the files to their export: a file copied in from another export (another
model, run or checkpoint) is refused instead of being run with the wrong label map or config.
"""

import hashlib
import json
from pathlib import Path

from efficientdet.errors import UserError
from efficientdet.model.description import from_dict

METADATA = "metadata.json"


def digest(path):
    """sha256 of a file, or of every file of a folder (names and contents, in sorted order)."""
    path = Path(path)
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    sha = hashlib.sha256()
    for item in files:
        sha.update(str(item.relative_to(path)).encode() if path.is_dir() else b"")
        with open(item, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def write_metadata(folder, metadata, exported):
    """Writes folder/metadata.json: `metadata` plus {name: sha256} of the `exported` names."""
    folder = Path(folder)
    files = {name: digest(folder / name) for name in exported}
    text = json.dumps({**metadata, "files": files}, indent=2) + "\n"
    (folder / METADATA).write_text(text)


def read_metadata(folder):
    path = Path(folder) / METADATA
    if not path.is_file():
        raise UserError(f"{folder}: not an export folder (no {METADATA})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None


def exported_model(path):
    """(model description, metadata) for an exported file or folder, checked against its digest."""
    path = Path(path)
    folder = path.parent
    metadata = read_metadata(folder)
    recorded = metadata.get("files", {}).get(path.name)
    if recorded is None:
        raise UserError(f"{path}: not listed in {folder / METADATA}; it is not part of this export")
    if recorded != digest(path):
        raise UserError(
            f"{path}: differs from the file exported with {folder / METADATA} "
            f"(sha256 mismatch): the folder mixes files of different exports"
        )
    return from_dict(metadata, folder / METADATA), metadata
