"""Beam SDK workers die with their driver (a `--beam_plugin` the workers import at start-up).

The FnApiRunner's multi_processing mode starts each SDK worker as a child process of the
driver (`sh -c`, which dash replaces by the worker) and nothing stops it when the driver is
killed (kill -9, OOM): the worker keeps waiting on its gRPC channel. Imported by the worker
(`--beam_plugin=mtlrec.pipeline.worker_guard`, added by `beam_args_with_guard`), this module
asks Linux to SIGKILL the worker when the thread that started it dies
(`PR_SET_PDEATHSIG`): the driver's thread that starts a worker waits on it for the worker's
whole life, so that is exactly when the driver dies. The driver's pid travels in
`MTLREC_DRIVER_PID`; a worker whose driver died before the request took effect exits at once.
Importing the module anywhere else (no `MTLREC_DRIVER_PID`, or this process is the driver)
does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

DRIVER_PID_ENV = "MTLREC_DRIVER_PID"
PLUGIN = __name__
_PR_SET_PDEATHSIG = 1


def beam_args_with_guard(beam_args: tuple[str, ...]) -> tuple[str, ...]:
    """`beam_args` plus the plugin, and the driver's pid in the environment the workers
    inherit (call in the driver, before the pipeline starts)."""
    os.environ[DRIVER_PID_ENV] = str(os.getpid())
    plugin = f"--beam_plugin={PLUGIN}"
    return beam_args if plugin in beam_args else (*beam_args, plugin)


def guard_worker() -> bool:
    """In a worker of a live driver: die with it. Returns whether the guard was armed."""
    driver = os.environ.get(DRIVER_PID_ENV, "")
    if not driver.isdigit() or int(driver) == os.getpid() or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(driver):
        # The driver died before prctl (we were re-parented), or a shell sits in between:
        # without a living driver this worker has no one to serve.
        try:
            os.kill(int(driver), 0)
        except ProcessLookupError:
            os._exit(1)
    return True


ARMED = guard_worker()
