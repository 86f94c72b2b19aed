"""Tasks and features follow the data: what a pre-joined table lacks is left out, with a note.

A task or feature the configuration leaves at its default is switched off when the data has
no column for it (a one-line note says so); one the configuration names explicitly (a config
file, a preset or `--set`) is an error that lists the columns the data has.
"""

from __future__ import annotations

import pathlib
from typing import Any

from mtlrec.config import Config, ConfigError
from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import CLICK, FEATURES, LABELS
from mtlrec.features.readers import column_names
from mtlrec.models.config import DEFAULT_TASKS
from mtlrec.models.tasks import kind_of
from mtlrec.pipeline import interactions


def available_columns(config: Config) -> set[str] | None:
    """Joined-example columns of the configured pre-joined table (its first file, under the
    contract's names); None for the raw event logs, whose columns the join makes."""
    data = config.data
    if data.raw_dir is None or data.interactions is None:
        return None
    files = interactions.discover(pathlib.Path(data.raw_dir), data.interactions.table)
    in_file = {file_name: name for name, file_name in data.interactions.columns.items()}
    return {in_file.get(c, c) for c in column_names(files[0])}


def fit(document: dict[str, Any], available: set[str]) -> tuple[dict[str, Any], list[str]]:
    """`document` with the default tasks and features the data cannot feed left out.

    Returns:
      (the document to validate, one note per change).

    Raises:
      ConfigError: an explicitly configured task or feature needs a column the data lacks.
    """
    document, notes = dict(document), []
    have = f"the data's columns: {sorted(available)}"
    if "tasks" in document:
        for task in document["tasks"]:
            label = LABELS.get(task.get("label") or "")
            if label is not None and label.source not in available:
                raise ConfigError(
                    f"config error: tasks.{task.get('name')}.label: no column {label.source!r} "
                    f"in the data; {have}"
                )
    else:
        document["tasks"], notes = _default_tasks(available)
        kept = {t["name"] for t in document["tasks"]}
        for section, key in (("export", "score_weights"), ("evaluation", "min_metrics")):
            document[section] = _only_tasks(document.get(section, {}), key, kept, section)
    features = document.get("features", {})
    if "enabled" in features:
        missing = [n for n in features["enabled"] if FEATURES[n].source not in available]
        if missing:
            raise ConfigError(
                f"config error: features.enabled: {missing} need columns the data lacks; {have}"
            )
    else:
        enabled = [n for n in FeaturesConfig().enabled if FEATURES[n].source in available]
        dropped = [n for n in FeaturesConfig().enabled if n not in enabled]
        if dropped:
            notes.append(f"features {dropped}: off, the data has no column for them")
        document["features"] = {**features, "enabled": enabled}
    return document, notes


def _default_tasks(available: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    tasks, notes, names = [], [], set()
    for task in DEFAULT_TASKS:
        label = LABELS.get(task.label or "")
        if label is not None and label.source not in available:
            notes.append(f"task {task.name}: off, the data has no {label.source!r} column")
            continue
        kind = kind_of(task)
        if set(kind.heads_read(task)) - {task.name} - names:
            task = kind.alone(task)  # an ESMM child whose parent is off
        update = {}
        if kind.ranks_catalogue and task.retrieval_on_clicks and CLICK not in available:
            notes.append(f"task {task.name}: every row is a positive pair (no click column)")
            update["retrieval_on_clicks"] = False
        tasks.append(task.model_copy(update=update).model_dump(mode="json"))
        names.add(task.name)
    return tasks, notes


def _only_tasks(section: dict[str, Any], key: str, kept: set[str], name: str) -> dict[str, Any]:
    """The section with its default per-task mapping cut to the tasks kept."""
    if key in section:
        return section
    defaults = Config().model_dump(mode="json")[name][key]
    return {**section, key: {k: v for k, v in defaults.items() if k.split(".")[0] in kept}}
