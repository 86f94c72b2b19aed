"""Task kinds by name, and the rules a tuple of tasks must follow (checked here only).

Kinds load on first use, so reading a configuration does not import TensorFlow until a
task's kind is asked for. Adding a kind is one module defining `KIND` plus its line here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence

_MODULES = {
    "retrieval": "mtlrec.models.tasks.retrieval",
    "binary": "mtlrec.models.tasks.binary",
    "esmm": "mtlrec.models.tasks.esmm",
    "regression": "mtlrec.models.tasks.regression",
}
CONFIG_KINDS = ("retrieval", "binary", "regression")
"""Kinds a task config may name; `esmm` is a binary task with an `esmm_parent`."""


@functools.cache
def kind_named(name: str):
    """The registered kind object `name`."""
    if name not in _MODULES:
        raise ValueError(f"unknown task kind {name!r}; valid: {list(CONFIG_KINDS)}")
    return importlib.import_module(_MODULES[name]).KIND


def kind_of(task):
    """The kind that serves `task` (a kind with an `esmm_parent` may hand it to a variant)."""
    kind = kind_named(task.kind)
    if task.esmm_parent is not None and kind.with_parent is not None:
        return kind_named(kind.with_parent)
    return kind


def validate_tasks(tasks: Sequence) -> None:
    """Checks names, each task against its kind, and references between tasks.

    Raises:
      ValueError: no task, duplicate names, more than one catalogue-ranking (retrieval)
        task, or a task its kind rejects (e.g. an `esmm_parent` that is not a plain binary
        task; the message lists the valid names).
    """
    if not tasks:
        raise ValueError("tasks: at least one task is needed")
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tasks: duplicate task name(s) {duplicates}; names must be unique")
    kinds = {t.name: kind_of(t) for t in tasks}
    if sum(kind.ranks_catalogue for kind in kinds.values()) > 1:
        raise ValueError("tasks: at most one retrieval task is supported")
    for task in tasks:
        kinds[task.name].validate(task, kinds)


def metric_direction(metric: str) -> bool | None:
    """Whether higher is better for an offline metric, by the kinds' metric prefixes
    (suffixes such as `_on_clicks` keep it); None when no kind declares it."""
    base = metric.split("_on_", 1)[0]
    for name in _MODULES:
        for prefix, higher in kind_named(name).metric_directions.items():
            if base.startswith(prefix):
                return higher
    return None
