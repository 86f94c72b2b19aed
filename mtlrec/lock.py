"""One run at a time per workdir: an advisory file lock, released even when the process dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import time
from collections.abc import Iterator

LOCK_FILE = ".lock"


class LockedError(RuntimeError):
    """Another mtlrec process holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: pathlib.Path, *, wait_s: float = 0.0) -> Iterator[None]:
    """Holds an exclusive lock on `workdir` (waiting up to `wait_s` seconds for it).

    The kernel drops a flock when its holder exits, so a crashed run never leaves the
    workdir locked for good.

    Raises:
      LockedError: the lock is still held after `wait_s` seconds.
    """
    path = workdir / LOCK_FILE
    with path.open("a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    raise LockedError(
                        f"workdir {workdir} is in use by another mtlrec run (pid {holder}); "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(0.5)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
