"""Logging for people (text on a terminal) and for schedulers (one JSON object per line)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import sys
import time
import traceback

LOGGER_NAME = "mtlrec"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", {})
        extra = "  ".join(f"{k}={v}" for k, v in fields.items())
        return f"[{stamp}] {record.getMessage()}" + (f"  {extra}" if extra else "")


def configure(log_format: str = "text") -> logging.Logger:
    """Sends mtlrec's log to stderr in `log_format` ('text' or 'json'); returns the logger."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def get() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def event(message: str, **fields: object) -> None:
    """Logs `message` with structured fields (JSON keys, or key=value on a terminal)."""
    get().info(message, extra={"fields": fields})


LOG_DIR = "logs"


def write_traceback(workdir: pathlib.Path, error: BaseException) -> pathlib.Path:
    """Writes `error`'s full traceback to `<workdir>/logs/error-<UTC time>-<pid>.log`.

    Raises:
      OSError: the workdir is not writable (the caller says so in its one line).
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = pathlib.Path(workdir) / LOG_DIR / f"error-{stamp}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(error)))
    return path
