"""The run manifest (SPEC §13): what a run read, produced, measured and decided."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any

MANIFEST = "manifest.json"


def read(path: pathlib.Path) -> dict[str, Any]:
    """The manifest at `path`, or an empty one when the run has not written it yet."""
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


def invariant_holds(counts: dict[str, Any]) -> bool:
    """events_read = duplicates + Σ rejected + accepted impressions + clicks + purchases."""
    accepted = (
        counts["impressions"]
        + counts["clicks_joined"]
        + counts["orphan_clicks"]
        + counts["purchases_attributed"]
        + counts["orphan_purchases"]
    )
    rejected = sum(counts["rejected"].values())
    return counts["events_read"] == counts["duplicates"] + rejected + accepted
