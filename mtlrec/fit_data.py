"""Tasks and features follow the data: what a pre-joined table lacks is left out, with a note.

A task or feature the configuration leaves at its default is switched off when the data has
no column for it (a one-line note says so); one the configuration names explicitly (a config
file, a preset or `--set`) is an error that lists the columns the data has.
"""

from __future__ import annotations

import pathlib
import statistics
from typing import Any

from mtlrec.config import Config, ConfigError
from mtlrec.features import readers, schema
from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import CLICK, FEATURES, LABELS
from mtlrec.models.config import DEFAULT_TASKS
from mtlrec.models.tasks import kind_of
from mtlrec.pipeline import interactions
from mtlrec.pipeline.config import DataConfig, InteractionsConfig

EVENT_TIME = "ts"
SECONDS_BELOW = 1e11
"""Epoch seconds stay below this until the year 5138; epoch ms passed it in 1973."""
MICROSECONDS_ABOVE = 1e14
"""Epoch µs passed this in 1973; epoch ms reach it in the year 5138."""
UNIT_NAMES = {"s": "seconds", "us": "microseconds"}


def prejoined(data: DataConfig) -> InteractionsConfig | None:
    """The pre-joined table to read: the configured one, or `interactions` when the raw
    directory has no event logs but has such a table."""
    if data.interactions is not None or data.raw_dir is None:
        return data.interactions
    raw_dir = pathlib.Path(data.raw_dir)
    try:
        readers.discover(raw_dir, "events")
        return None
    except ValueError:
        default = InteractionsConfig()
        try:
            interactions.discover(raw_dir, default.table)
        except ValueError:
            return None
        return default


def _first_file(data: DataConfig, table: InteractionsConfig) -> readers.RawFile:
    """The first non-empty file (validation skips empty ones), else the first."""
    files = interactions.discover(pathlib.Path(data.raw_dir), table.table)
    return next((f for f in files if pathlib.Path(f.path).stat().st_size), files[0])


def _file_names(data: DataConfig, table: InteractionsConfig) -> dict[str, str]:
    """Contract column -> file column of the pre-joined table."""
    return {**data.columns, **table.columns}


def available_columns(config: Config) -> set[str] | None:
    """Joined-example columns of the pre-joined table (its first file, under the contract's
    names); None for the raw event logs, whose columns the join makes."""
    table = prejoined(config.data)
    if table is None:
        return None
    in_file = {file: name for name, file in _file_names(config.data, table).items()}
    return {in_file.get(c, c) for c in readers.column_names(_first_file(config.data, table))}


def detected_ts_unit(config: Config) -> str | None:
    """`s` or `us` when the pre-joined table's numeric timestamps look like it (the median
    of its first rows against today's epoch in ms); None for ms, ISO-8601 or no table."""
    table = prejoined(config.data)
    if table is None:
        return None
    file = _first_file(config.data, table)
    column = _file_names(config.data, table).get(EVENT_TIME, EVENT_TIME)
    contract = schema.Table(
        "probe", (schema.Column(column, schema.ColumnType.FLOAT),), column, True
    )
    first = next(readers.read_batches(file.path, file.format, contract, batch_size=1000), None)
    if first is None:
        return None
    finite = [v for v in map(_number, first.column(column).to_pylist()) if v is not None]
    if not finite:
        return None
    magnitude = statistics.median(finite)
    if magnitude < SECONDS_BELOW:
        return "s"
    return "us" if magnitude > MICROSECONDS_ABOVE else None


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None  # ISO-8601 text, or a value validation will reject


def adapt(document: dict[str, Any], config: Config) -> tuple[dict[str, Any], list[str]]:
    """The document fitted to the raw directory: a lone `interactions` table read as the
    pre-joined form, its timestamp unit, and the tasks and features its columns feed."""
    table = prejoined(config.data)
    if table is None:
        return document, []
    document, notes = dict(document), []
    data = dict(document.get("data", {}))
    if config.data.interactions is None:
        data["interactions"] = {"table": table.table}
        notes.append(
            f"{config.data.raw_dir} holds no event logs but an {table.table!r} table: read as "
            "pre-joined interactions (data.interactions)"
        )
    if config.data.ts_unit is None and (unit := detected_ts_unit(config)) is not None:
        data["ts_unit"] = unit
        notes.append(
            f"timestamps look like {UNIT_NAMES[unit]}: data.ts_unit={unit} (set it to be sure)"
        )
    document["data"] = data
    fitted, fit_notes = fit(document, available_columns(config))
    return fitted, notes + fit_notes


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
