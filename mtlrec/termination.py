"""SIGTERM (what Airflow, Kubernetes and systemd send) as an exception, like Ctrl-C.

The handler raises `Terminated` in the main thread, so the running step records
`interrupted` and the workdir lock is released. Libraries that call back into Python
from C++ (tf.data generators, Beam's runner threads) catch whatever that callback raises
and report it as their own error; the handler also sets a flag, so an error that follows
a SIGTERM is still known for what it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_RECEIVED = threading.Event()


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler; a KeyboardInterrupt so every `finally` and lock
    release runs as it does for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    _RECEIVED.set()
    raise Terminated


def received() -> bool:
    """Whether SIGTERM arrived while `raise_on_sigterm` was active."""
    return _RECEIVED.is_set()


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Installs the handler for the block (main thread only: elsewhere Python cannot)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _RECEIVED.clear()
