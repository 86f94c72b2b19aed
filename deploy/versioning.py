"""Atomic, increasing integer versions under `<export_root>/<model_name>/` (SPEC §8).

TF Serving watches a model's base path and loads the largest directory whose name is an
integer. A version is therefore first written to a temporary sibling directory, whose name
is not an integer so TF Serving ignores it, checked by the caller's `verify`, flushed to
disk, and only then renamed to its integer name: a rename within one directory is atomic,
so a crash at any point leaves either no new version or a complete one.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import uuid
from collections.abc import Callable

_TMP_PREFIX = ".tmp-"
_RENAME_ATTEMPTS = 5


def list_versions(model_dir: pathlib.Path) -> list[int]:
    """Published versions of a model (integer directory names), ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_dir: pathlib.Path) -> int:
    """The version the next publish gets: one more than the largest published version."""
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def clean_stale_temporaries(model_dir: pathlib.Path) -> list[pathlib.Path]:
    """Removes temporaries left by exports that died on this host; returns what it removed.

    A temporary is named `.tmp-<host>-<pid>-<random>`; one whose process is still running
    (or that belongs to another host sharing the directory) may be a live export and stays.
    """
    if not model_dir.is_dir():
        return []
    removed = []
    for path in model_dir.iterdir():
        owner = _temporary_owner(path.name)
        if owner is None:
            continue
        host, pid = owner
        if host == socket.gethostname() and not _process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def publish_version(
    model_dir: pathlib.Path,
    write: Callable[[pathlib.Path], None],
    verify: Callable[[pathlib.Path], None],
    min_version: int = 1,
) -> pathlib.Path:
    """Writes, verifies and atomically publishes a new version; returns its directory.

    Args:
      model_dir: `<export_root>/<model_name>`; created if missing.
      write: fills the (empty, existing) directory it is given with the complete version.
      verify: raises if the written directory is not a correct version; nothing is published.
      min_version: the smallest number the new version may take (to keep the versions of
        models that are published together in step).

    Raises:
      RuntimeError: other exporters kept taking the version numbers; nothing is published.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(model_dir)
    tmp = model_dir / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write(tmp)
        verify(tmp)
        _fsync_tree(tmp)
        return _rename_to_next_version(tmp, model_dir, min_version)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _rename_to_next_version(
    tmp: pathlib.Path, model_dir: pathlib.Path, min_version: int
) -> pathlib.Path:
    # The number is taken at rename time, not at start, so concurrent exports of the same
    # model get distinct versions; renaming onto a non-empty directory fails, so a version
    # taken meanwhile by another exporter is never overwritten.
    for _ in range(_RENAME_ATTEMPTS):
        target = model_dir / str(max(next_version(model_dir), min_version))
        try:
            os.rename(tmp, target)
        except OSError:
            if target.exists():
                continue
            raise
        _fsync_dir(model_dir)
        return target
    raise RuntimeError(
        f"{model_dir}: another exporter took version numbers {_RENAME_ATTEMPTS} times in a row; "
        "run one export per model at a time"
    )


def _temporary_owner(name: str) -> tuple[str, int] | None:
    if not name.startswith(_TMP_PREFIX):
        return None
    host, _, rest = name[len(_TMP_PREFIX) :].rpartition("-")[0].rpartition("-")
    return (host, int(rest)) if rest.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(root: pathlib.Path) -> None:
    # Flush file contents and directory entries before the rename makes them visible, so a
    # power loss cannot publish a version whose files are still empty.
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            fd = os.open(os.path.join(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(pathlib.Path(dirpath))


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
