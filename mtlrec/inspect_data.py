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

from mtlrec.config import Config
from mtlrec.features import readers, schema
from mtlrec.pipeline import interactions, validate
from mtlrec.pipeline.table_sources import table_sources
from mtlrec.pipeline.validate_job import TableSource

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
    bad_files: dict[str, str] = dataclasses.field(default_factory=dict)
    """Files validation would skip as empty or unreadable: path -> reason."""
    unmatched: tuple[str, ...] = ()
    """Columns of the files that no contract column takes (candidates for `data.columns`)."""
    missing: tuple[str, ...] = ()
    """Required contract columns (as the files would name them) that no file holds."""


def inspect_tables(config: Config) -> list[TableReport]:
    """Every table the validate step would read, inspected."""
    sources = table_sources(config.job_config(), pathlib.Path(config.data.raw_dir))
    return [inspect_table(name, source) for name, source in sources.items()]


def inspect_table(name: str, source: TableSource) -> TableReport:
    """Reads every file of the table once, validating it as the validate step would."""
    accepted, rejected, partitions, rows = [], dict.fromkeys(schema.REJECT_REASONS, 0), {}, 0
    in_file = dict(zip(source.in_files.column_names, source.contract.column_names, strict=True))
    present, bad_files, in_files = set(), {}, []
    for file in source.files:
        try:
            names = readers.column_names(file)
            in_files += [c for c in names if c not in in_files]
            present |= {in_file.get(c) for c in names}
            batches = list(readers.read_batches(file.path, file.format, source.in_files))
        except readers.BadFileError as e:
            bad_files[e.path] = e.reason
            continue
        for raw in batches:
            raw = interactions.to_contract_names(raw, source.contract)
            good, bad = validate.validate_batch(raw, source.contract)
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
        files=len(source.files),
        rows=rows,
        rejected={k: v for k, v in rejected.items() if v},
        columns=[_column_stats(n, data.column(n)) for n in data.column_names if n in present],
        partitions=dict(sorted(partitions.items())),
        bad_files=bad_files,
        unmatched=tuple(c for c in in_files if c not in in_file),
        missing=tuple(
            f for f, c in in_file.items() if source.contract.column(c).required and c not in present
        )
        if in_files
        else (),
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


def proposed_document(document: dict[str, Any], config: Config) -> dict[str, Any]:
    """The configuration to propose: the user's document as fitted to the data, with the
    raw directory and, for a pre-joined table, the tasks and features spelled out."""
    proposed = dict(document)
    proposed["data"] = {**proposed.get("data", {}), "raw_dir": config.data.raw_dir}
    if config.data.interactions is not None:
        proposed.setdefault("tasks", [t.model_dump(mode="json") for t in config.tasks])
        features = proposed.get("features", {})
        proposed["features"] = {**features, "enabled": list(config.features.enabled)}
    return proposed


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
        lines += [f"  would skip bad file {path}: {why}" for path, why in r.bad_files.items()]
        if r.missing:
            lines.append(
                f"  required columns no file holds: {', '.join(r.missing)}; the files' columns "
                f"no contract column takes: {', '.join(r.unmatched) or 'none'}; map them with "
                "--set 'data.columns={CONTRACT: YOURS, ...}'"
            )
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
