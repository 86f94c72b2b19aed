"""Keeps TensorFlow's and absl's C++ start-up log lines off the console.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so those lines go
straight to file descriptor 2 and `TF_CPP_MIN_LOG_LEVEL` no longer silences them (each Beam
worker prints them again when it loads TensorFlow). The console's stderr is therefore read
through a pipe that drops the native log lines (optionally keeping them in a file) and
passes everything else on. Beam's worker processes inherit the filtered descriptor.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

from mtlrec.pipeline.progress import TERMINAL_ENV

NATIVE_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)
"""An absl/TensorFlow C++ log line below FATAL, or absl's and cpu_feature_guard's notes."""


def _forward(source: int, console: int, kept: int | None) -> None:
    with os.fdopen(source, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            _write(lines, console, kept)
            if b"\r" in pending:
                # A progress bar redrawn in place: no native log line has a carriage return.
                os.write(console, pending)
                pending = b""
        if pending:
            _write([pending], console, kept)


def _write(lines: list[bytes], console: int, kept: int | None) -> None:
    shown = [line for line in lines if not NATIVE_LINE.match(line)]
    if shown:
        os.write(console, b"\n".join(shown) + b"\n")
    if kept is not None and len(shown) < len(lines):
        os.write(kept, b"".join(line + b"\n" for line in lines if NATIVE_LINE.match(line)))


@contextlib.contextmanager
def quiet_native_logs(keep_in: str | None = None) -> Iterator[None]:
    """Filters file descriptor 2 while the block runs; `keep_in` appends the dropped lines."""
    sys.stderr.flush()
    if os.isatty(2):
        os.environ[TERMINAL_ENV] = "1"
    console = os.dup(2)
    kept = os.open(keep_in, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if keep_in else None
    read_end, write_end = os.pipe()
    forwarder = threading.Thread(
        target=_forward, args=(read_end, console, kept), name="native-logs", daemon=True
    )
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        # Restoring fd 2 closes the pipe's last write end in this process; the forwarder
        # drains what is left and stops (a worker still alive keeps it open: do not wait).
        os.dup2(console, 2)
        forwarder.join(timeout=5)
        if not forwarder.is_alive():
            os.close(console)
            if kept is not None:
                os.close(kept)
