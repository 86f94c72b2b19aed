"""JSON documents of a run directory (manifests, metrics, the blessed record), written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any


def read(path: pathlib.Path) -> dict[str, Any]:
    """The document at `path`, or an empty one when it has not been written yet."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_json(path: pathlib.Path, document: dict[str, Any]) -> None:
    """Writes atomically and durably, so a reader (or the next run after a crash or power
    loss) sees either the previous document or the whole new one, never half of it.

    The text goes to a temporary sibling that is fsync'ed, renamed over `path`, and the
    directory entry fsync'ed; on any error (disk full, read-only) the temporary is removed
    and `path` keeps its previous content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; schedulers and report readers may run as other users.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
