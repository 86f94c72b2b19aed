"""JSON documents of a run directory (manifests, metrics, the blessed record), written atomically."""

from __future__ import annotations

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
    """Writes atomically, so a scheduler reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    # mkstemp creates 0600 files; schedulers and report readers may run as other users.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
