"""Beam SDK workers die with their driver, however the driver dies (kill -9 and OOM included).

The FnApiRunner's multi_processing mode starts each SDK worker as `sh -c "python -m
apache_beam.runners.worker.sdk_worker_main"`, a child of the driver, and hands the workers
no pipeline options (their `PIPELINE_OPTIONS` is `{}`), so a worker-side hook such as
`--beam_plugin` never runs there, and `PR_SET_PDEATHSIG` set in the driver is not inherited.
What works is a watchdog on the driver's side that outlives it:

`start_watchdog()` (called once by the driver, `mtlrec.cli`) spawns `python -m
mtlrec.pipeline.worker_guard <driver pid> <fd>` in its own session, holding the read end of
a pipe whose write end only the driver holds. Every `POLL_S` the watchdog records the
driver's descendants (pid and start time, from /proc); when the pipe reads EOF (the kernel
closes the driver's end when the driver dies, by any signal), it SIGKILLs every recorded
process still alive with the same start time, every process whose environment carries
the driver's tag (`MTLREC_DRIVER_PID=<pid>`, which the driver sets and its workers inherit:
this catches a worker started after the last poll, already re-parented to init), and
their children, then exits. A driver that ends normally has no workers left, and the
watchdog just exits.

`kill_descendants()` is the same clean-up from inside a live driver (an interrupted Beam job
leaves the runner's threads waiting on their workers, which would keep the driver alive).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import select
import signal
import subprocess
import sys

POLL_S = 0.5
DRIVER_ENV = "MTLREC_DRIVER_PID"
_started: list[subprocess.Popen] = []
_write_ends: list[int] = []


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every process /proc shows."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(pid: int, table: dict[int, tuple[int, int]] | None = None) -> dict[int, int]:
    """pid -> start time of every descendant of `pid` (children, their children, ...)."""
    table = _processes() if table is None else table
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        frontier = {p for p, (ppid, _) in table.items() if ppid in frontier and p not in found}
        found.update({p: table[p][1] for p in frontier})
    return found


def tagged(driver: int, table: dict[int, tuple[int, int]] | None = None) -> dict[int, int]:
    """pid -> start time of the processes whose environment names `driver` as theirs."""
    table = _processes() if table is None else table
    tag = f"{DRIVER_ENV}={driver}".encode()
    found = {}
    for p, (_, start) in table.items():
        try:
            environ = pathlib.Path(f"/proc/{p}/environ").read_bytes()
        except OSError:
            continue
        if tag in environ.split(b"\0"):
            found[p] = start
    return found


def _kill(recorded: dict[int, int]) -> list[int]:
    """SIGKILLs the recorded processes that are still the same processes, and their
    descendants; returns the pids signalled."""
    table = _processes()
    alive = {p for p, start in recorded.items() if p in table and table[p][1] == start}
    for p in list(alive):
        alive.update(descendants(p, table))
    for p in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return sorted(alive)


def kill_descendants(exclude: tuple[int, ...] = ()) -> list[int]:
    """From a live driver: SIGKILLs its descendants (the Beam workers), except the watchdog."""
    skip = set(exclude) | {w.pid for w in _started}
    mine = {p: s for p, s in descendants(os.getpid()).items() if p not in skip}
    return _kill(mine)


def start_watchdog() -> int | None:
    """Starts the watchdog of this driver (once per process, Linux only); returns its pid."""
    if _started:
        return _started[0].pid
    if not sys.platform.startswith("linux"):
        return None
    # Inherited by every process this driver starts from now on (the Beam workers).
    os.environ[DRIVER_ENV] = str(os.getpid())
    read_end, write_end = os.pipe()
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid()), str(read_end)],
            pass_fds=(read_end,),
            env={k: v for k, v in os.environ.items() if k != DRIVER_ENV},
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(read_end)
    # The write end stays open (and non-inheritable, so no worker holds it) until this
    # process dies.
    _started.append(watchdog)
    _write_ends.append(write_end)
    return watchdog.pid


def watch(driver: int, read_end: int) -> None:
    """The watchdog's loop: record the driver's descendants until its pipe end closes."""
    recorded: dict[int, int] = {}
    while True:
        readable, _, _ = select.select([read_end], [], [], POLL_S)
        if readable and not os.read(read_end, 1):
            break
        recorded.update(descendants(driver))
    recorded.update(tagged(driver))
    recorded.pop(os.getpid(), None)
    _kill(recorded)


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
