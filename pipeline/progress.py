"""Progress of a Beam job's raw-file reading on the console: files and rows read so far.

Beam's local runners report metrics only when the job ends, so each reading DoFn appends
what it has read to a file of its own (one per worker process) in a directory the driver
watches. That directory is local: only runners whose workers share this machine get it.
On a terminal the driver shows a tqdm bar (files, rows, rows/s, ETA by files); otherwise,
as under cron or Airflow, a log line every `interval_s` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from tqdm import tqdm

_LOG = logging.getLogger(__name__)
TERMINAL_ENV = "MTLREC_CONSOLE_IS_TERMINAL"
"""Set (to 1) by the CLI when its console is a terminal it reads through a pipe (the
native-log filter), where `isatty` says no."""


class ReadProgress(NamedTuple):
    files: int
    """Files read to their end (bad files included)."""
    rows: int
    """Rows read so far, over every file."""


def record(directory: str, path: str, rows: int, *, done: bool = False) -> None:
    """Adds `rows` read from `path` (and, with `done`, its end) to this process's file."""
    name = os.path.join(directory, f"{socket.gethostname()}-{os.getpid()}.tsv")
    with open(name, "a") as out:
        out.write(f"{rows}\t{int(done)}\t{path}\n")


def read_progress(directory: str) -> ReadProgress:
    """What every worker has recorded in `directory` so far."""
    files = rows = 0
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as lines:
            for line in lines:
                # A line a worker is writing right now is incomplete: counted next time.
                fields = line.rstrip("\n").split("\t", 2)
                if line.endswith("\n") and len(fields) == 3:
                    rows += int(fields[0])
                    files += int(fields[1])
    return ReadProgress(files, rows)


def _status(progress: ReadProgress, total: int, rate: float) -> str:
    if progress.rows == 0 and progress.files == 0:
        return "starting the workers"
    if progress.files < total:
        return f"{progress.rows:,} rows, {rate:,.0f} rows/s"
    return f"{progress.rows:,} rows read; the job's later stages are running"


def _show(label: str, total: int, directory: str, stop: threading.Event, interval_s: float):
    terminal = sys.stderr.isatty() or os.environ.get(TERMINAL_ENV) == "1"
    bar = tqdm(total=total, desc=label, unit="file", leave=False) if terminal else None
    first_row = rate = None
    last_line = time.monotonic()
    while True:
        stopped = stop.wait(0.5)
        progress = read_progress(directory)
        now = time.monotonic()
        if progress.rows and first_row is None:
            first_row = now
        if first_row is not None and progress.files < total:
            # Rows per second of reading alone: worker start-up before, later stages after.
            rate = progress.rows / max(now - first_row, 0.5)
        status = _status(progress, total, rate or 0.0)
        if bar is not None:
            bar.n = progress.files
            bar.set_postfix_str(status, refresh=True)
        elif now - last_line >= interval_s:
            last_line = now
            _LOG.info(f"{label}: {progress.files} of {total} files, {status}")
        if stopped:
            break
    if bar is not None:
        bar.close()


@contextlib.contextmanager
def watch(label: str, total_files: int, *, enabled: bool, interval_s: float = 30.0) -> Iterator:
    """Shows the reading progress of the job run inside the block; yields the directory
    the reading DoFns record into (None when not `enabled`: remote workers)."""
    if not enabled:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="mtlrec-progress-")
    stop = threading.Event()
    shower = threading.Thread(
        target=_show, args=(label, total_files, directory, stop, interval_s), daemon=True
    )
    shower.start()
    try:
        yield directory
    finally:
        stop.set()
        shower.join()
        shutil.rmtree(directory, ignore_errors=True)
