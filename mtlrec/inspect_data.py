"""`mtlrec inspect`: what a raw directory holds, what validation would reject, and a config.

Per table and column: the contract type, null and distinct counts, min and max (Arrow
compute over the rows validation accepts); the event-time range of each `dt=` partition;
the rows validation would reject, by reason; and a proposed configuration (the pre-joined
table if there is one, the tasks and features its columns can feed) that runs as written.
Statistics use Arrow compute: TensorFlow Data Validation has no release for the pinned
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.config import Config, config_document, data_preset
from mtlrec.config import validate as validate_config
from mtlrec.features import readers, schema
from mtlrec.fit_data import available_columns, fit
from mtlrec.pipeline import interactions, validate
from mtlrec.pipeline.config import InteractionsConfig

EVENT_TIME = "ts"
OUTSIDE_PARTITIONS = "-"


@dataclasses.dataclass(frozen=True)
class TableReport:
    """What inspection found in one table."""

    name: str
    files: int
    rows: int
    rejected: dict[str, int]
    """Rows validation would reject, by reason (reasons with none left out)."""
    columns: list[dict[str, Any]]
    """Per column: name, type, nulls, distinct, min, max (over the accepted rows)."""
    partitions: dict[str, tuple[int, int]]
    """`dt=` partition ("-" outside any) -> (min, max) accepted event time in ms."""


def prejoined(raw_dir: pathlib.Path, config: Config) -> InteractionsConfig | None:
    """The pre-joined table to read: the configured one, or `interactions` when the
    directory has no event logs but has such a table."""
    if config.data.interactions is not None:
        return config.data.interactions
    try:
        readers.discover(raw_dir, "events")
    except ValueError:
        default = InteractionsConfig()
        try:
            interactions.discover(raw_dir, default.table)
        except ValueError:
            return None
        return default
    return None


def tables(raw_dir: pathlib.Path, config: Config) -> list[tuple[str, schema.Table, list]]:
    """(name, contract under the file's column names, files) of each table present."""
    table = prejoined(raw_dir, config)
    if table is not None:
        contract = interactions.file_table(interactions.table(table.table), dict(table.columns))
        return [(table.table, contract, interactions.discover(raw_dir, table.table))]
    found = []
    for name, contract in schema.TABLES.items():
        files = readers.discover(raw_dir, name)  # events are required: a clear error if absent
        if files:
            found.append((name, contract, files))
    return found


def inspect_table(name: str, contract: schema.Table, files: list) -> TableReport:
    """Reads every file of the table once, validating it as the validate step would."""
    accepted, rejected, partitions, rows = [], dict.fromkeys(schema.REJECT_REASONS, 0), {}, 0
    present = {name for file in files for name in readers.column_names(file)}
    for file in files:
        for raw in readers.read_batches(file.path, file.format, contract):
            good, bad = validate.validate_batch(raw, contract)
            rows += raw.num_rows
            for reason, count in validate.reject_counts(bad).items():
                rejected[reason] += count
            good = good.drop_columns([c for c in good.schema.names if c.startswith("_")])
            accepted.append(good)
            if EVENT_TIME in good.schema.names and good.num_rows:
                span = pc.min_max(good.column(EVENT_TIME)).as_py()
                key = file.dt or OUTSIDE_PARTITIONS
                low, high = partitions.get(key, (span["min"], span["max"]))
                partitions[key] = (min(low, span["min"]), max(high, span["max"]))
    data = pa.Table.from_batches(accepted) if accepted else pa.table({})
    return TableReport(
        name=name,
        files=len(files),
        rows=rows,
        rejected={k: v for k, v in rejected.items() if v},
        columns=[_column_stats(n, data.column(n)) for n in data.column_names if n in present],
        partitions=dict(sorted(partitions.items())),
    )


def _column_stats(name: str, values: pa.ChunkedArray) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "name": name,
        "type": str(values.type),
        "nulls": values.null_count,
        "distinct": pc.count_distinct(values).as_py(),
        "min": None,
        "max": None,
    }
    if values.length() > values.null_count:
        span = pc.min_max(values).as_py()
        stats["min"], stats["max"] = span["min"], span["max"]
    return stats


def proposed_document(raw_dir: pathlib.Path, config: Config) -> tuple[dict[str, Any], list[str]]:
    """A configuration document for this data, and the notes of what it left out."""
    preset = data_preset(raw_dir)
    document = config_document(preset=preset)
    document.setdefault("data", {})["raw_dir"] = str(raw_dir)
    table = prejoined(raw_dir, config)
    if table is None:
        return document, []
    document["data"]["interactions"] = table.model_dump(mode="json")
    available = available_columns(validate_config(document))
    if preset is not None:
        return document, []  # the preset names its tasks and features
    return fit(document, available)


def _shown(name: str, value: object) -> str:
    """Event times (ms) as UTC ISO-8601; everything else as it is."""
    if isinstance(value, int) and (name == EVENT_TIME or name.endswith("_ts")):
        return datetime.datetime.fromtimestamp(value / 1000, datetime.UTC).isoformat(
            timespec="seconds"
        )
    return str(value)


def report_lines(reports: list[TableReport]) -> list[str]:
    """The inspection as text: one block per table."""
    lines = []
    for r in reports:
        rejected = ", ".join(f"{k} {v}" for k, v in r.rejected.items()) or "none"
        lines.append(f"{r.name}: {r.rows} rows in {r.files} file(s); would reject: {rejected}")
        for c in r.columns:
            lines.append(
                f"  {c['name']:<16} {c['type']:<8} nulls {c['nulls']:<8} distinct "
                f"{c['distinct']:<8} min {_shown(c['name'], c['min']):<25} "
                f"max {_shown(c['name'], c['max'])}"
            )
        for dt, (low, high) in r.partitions.items():
            shown = f"{_shown(EVENT_TIME, low)} .. {_shown(EVENT_TIME, high)}"
            lines.append(
                f"  {EVENT_TIME} in dt={dt}: {shown}" if dt != "-" else f"  {EVENT_TIME}: {shown}"
            )
    return lines
