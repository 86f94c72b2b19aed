"""Content fingerprints: a step reruns only when its inputs or its configuration changed."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

_CHUNK = 1 << 20


def of_files(root: pathlib.Path, *, dates: tuple[str, str] | None = None) -> str:
    """sha256 over the relative paths and contents of every file under `root`.

    With `dates`, `dt=YYYY-MM-DD` partitions outside [start, end] are left out, so a run
    over a date window depends only on that window's files.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if dates is not None and not _in_window(relative, dates):
            continue
        digest.update(relative.encode())
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _in_window(relative: str, dates: tuple[str, str]) -> bool:
    for part in relative.split("/"):
        if part.startswith("dt="):
            day = part[3:]
            return dates[0] <= day <= dates[1]
    return True


def of_values(*values: Any) -> str:
    """sha256 of JSON-serialisable values (configuration sections, upstream fingerprints)."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
