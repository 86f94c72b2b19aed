"""Row validation (SPEC §11), vectorised per Arrow RecordBatch.

Each row gets at most one reject reason: the first failing check in `REASON_ORDER`, for the
first failing column in contract order. `detail` names the field. Accepted rows come out in
contract types with their `_file` / `_row` provenance; rejected rows keep their raw text.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import readers, schema
from mtlrec.features.schema import ColumnType, RejectReason
from mtlrec.pipeline.config import DataConfig

REASON_ORDER: tuple[RejectReason, ...] = (
    RejectReason.MALFORMED_ROW,
    RejectReason.MISSING_FIELD,
    RejectReason.EMPTY_ID,
    RejectReason.BAD_TIMESTAMP,
    RejectReason.UNKNOWN_EVENT_TYPE,
    RejectReason.BAD_VALUE,
    RejectReason.OUT_OF_RANGE,
)
REASON_COLUMN = "reason"
DETAIL_COLUMN = "detail"
DAY_MS = 86_400_000
DEFAULT_LOOKBACK_MS = 365 * DAY_MS
"""`data.min_ts` null: events more than this before the earliest `dt=` partition are out of era."""
DEFAULT_MAX_CHARS = 256
"""`data.max_value_chars`'s default: longer ids and text values are bad_value."""
_READER_ONLY = (readers.MALFORMED_COLUMN, readers.NESTED_COLUMN)
"""Reader columns the detail already states; the dead-letter rows leave them out."""
_DT_PART = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")


@dataclasses.dataclass(frozen=True)
class Window:
    """Accepted event times [start_ms, end_ms) (`data.start`/`data.end`), the plausible era
    [min_ts, max_ts] (time sanity) and how far a row's ts may stray from its `dt=` day;
    None = open / unchecked."""

    start_ms: int | None = None
    end_ms: int | None = None
    min_ts: int | None = None
    max_ts: int | None = None
    partition_tolerance_ms: int | None = None

    @classmethod
    def from_dates(cls, start: str | None, end: str | None) -> Window:
        """`start`/`end` are inclusive YYYY-MM-DD days (UTC), as in `data.start`/`data.end`."""
        return cls(
            None if start is None else _day_ms(start, "data.start"),
            None if end is None else _day_ms(end, "data.end") + DAY_MS,
        )

    @classmethod
    def for_run(
        cls,
        data: DataConfig,
        now_ms: int | None,
        partition_dates: Sequence[str] = (),
    ) -> Window:
        """The window of a run: `data.start`/`data.end`, and the time-sanity rule.

        Args:
          data: the `data` section (`pipeline.config.DataConfig`).
          now_ms: the run's wall clock, read once by the driver; None = no future bound
            unless `data.max_ts` is set.
          partition_dates: the `dt=` dates of the files read; the earliest one anchors the
            default `data.min_ts` (365 days before it).
        """
        dates = cls.from_dates(data.start, data.end)
        max_ts = data.max_ts
        if max_ts is None and now_ms is not None:
            max_ts = now_ms + data.future_tolerance_s * 1000
        min_ts = data.min_ts
        if min_ts is None and partition_dates:
            min_ts = _day_ms(min(partition_dates), "dt= partition") - DEFAULT_LOOKBACK_MS
        tolerance = data.partition_tolerance_s
        return dataclasses.replace(
            dates,
            min_ts=min_ts,
            max_ts=max_ts,
            partition_tolerance_ms=None if tolerance is None else tolerance * 1000,
        )


def partition_day_ms(path: str) -> int | None:
    """Start (ms, UTC) of the day of the `dt=YYYY-MM-DD` partition `path` is under, if any."""
    found = _DT_PART.findall(path.replace("\\", "/"))
    if not found:
        return None
    try:
        return _day_ms(found[-1], "dt= partition")
    except ValueError:
        return None


def _day_ms(day: str, key: str) -> int:
    try:
        parsed = datetime.date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"{key}: {day!r} is not a YYYY-MM-DD date") from None
    return (parsed - datetime.date(1970, 1, 1)).days * DAY_MS


def _is_id(column: schema.Column) -> bool:
    return column.type is ColumnType.STRING and column.name.endswith("_id")


def _nested(raw: pa.RecordBatch, column: str) -> pa.Array | None:
    """Rows whose `column` held a JSON object or array (see `readers.NESTED_COLUMN`)."""
    if readers.NESTED_COLUMN not in raw.schema.names:
        return None
    lists = raw.column(readers.NESTED_COLUMN).to_pylist()
    return pa.array([column in (names or ()) for names in lists])


def _bad_values(raw: pa.RecordBatch, typed: pa.RecordBatch, table: schema.Table, max_chars: int):
    """Yields the bad_value checks: unparseable or negative numbers, object/array values and
    text longer than `max_chars`, column by column."""
    for column in table.columns:
        nested = _nested(raw, column.name)
        if nested is not None:
            yield (
                RejectReason.BAD_VALUE,
                column.name,
                nested,
                f"{column.name} is a JSON object or array, not a scalar",
            )
        if column.type is ColumnType.STRING:
            text = raw.column(column.name)
            too_long = pc.greater(pc.utf8_length(text), max_chars)
            detail = f"{column.name} is longer than data.max_value_chars={max_chars}"
            yield RejectReason.BAD_VALUE, column.name, too_long, detail
        if column.type not in (ColumnType.INT, ColumnType.FLOAT):
            continue
        value = typed.column(column.name)
        bad = pc.and_kleene(pc.is_valid(raw.column(column.name)), pc.is_null(value))
        if column.non_negative:
            finite = pc.is_finite(value) if column.type is ColumnType.FLOAT else pc.is_valid(value)
            negative = pc.or_kleene(pc.invert(finite), pc.less(value, 0))
            bad = pc.or_kleene(bad, pc.and_kleene(pc.is_valid(value), negative))
        yield RejectReason.BAD_VALUE, column.name, bad, None


def _checks(
    raw: pa.RecordBatch,
    typed: pa.RecordBatch,
    table: schema.Table,
    window: Window,
    max_chars: int,
):
    """Yields (reason, column name, failing-row mask, detail or None for the reason's own)
    in reason, then column order."""
    event_type = typed.column("event_type") if "event_type" in typed.schema.names else None
    for column in table.columns:
        text = raw.column(column.name)
        missing = pc.is_null(text)
        if not column.required and column.required_for and event_type is not None:
            needed = pc.is_in(event_type, pa.array([e.value for e in column.required_for]))
            missing = pc.and_kleene(missing, pc.fill_null(needed, False))
        elif not column.required:
            missing = None
        if missing is not None:
            yield RejectReason.MISSING_FIELD, column.name, missing, None
    for column in table.columns:
        if _is_id(column):
            yield (
                RejectReason.EMPTY_ID,
                column.name,
                pc.equal(raw.column(column.name), ""),
                None,
            )
    for column in table.columns:
        if column.type is ColumnType.TIMESTAMP:
            unparsed = pc.and_kleene(
                pc.is_valid(raw.column(column.name)), pc.is_null(typed[column.name])
            )
            yield RejectReason.BAD_TIMESTAMP, column.name, unparsed, None
    if event_type is not None:
        known = pc.is_in(event_type, pa.array(schema.EVENT_TYPES))
        yield RejectReason.UNKNOWN_EVENT_TYPE, "event_type", pc.invert(known), None
    yield from _bad_values(raw, typed, table, max_chars)
    if "ts" in table.column_names and (window.start_ms is not None or window.end_ms is not None):
        ts = typed.column("ts")
        outside = pa.array(np.zeros(len(ts), dtype=bool))
        if window.start_ms is not None:
            outside = pc.or_kleene(outside, pc.less(ts, window.start_ms))
        if window.end_ms is not None:
            outside = pc.or_kleene(outside, pc.greater_equal(ts, window.end_ms))
        yield RejectReason.OUT_OF_RANGE, "ts", outside, None
    if "ts" in table.column_names:
        yield from _time_sanity(raw, typed.column("ts"), window)


def _time_sanity(raw: pa.RecordBatch, ts: pa.Array, window: Window):
    """Out-of-era times, and times too far from their file's `dt=` day (SPEC §11)."""
    if window.min_ts is not None or window.max_ts is not None:
        outside = pa.array(np.zeros(len(ts), dtype=bool))
        if window.min_ts is not None:
            outside = pc.or_kleene(outside, pc.less(ts, window.min_ts))
        if window.max_ts is not None:
            outside = pc.or_kleene(outside, pc.greater(ts, window.max_ts))
        yield RejectReason.OUT_OF_RANGE, "ts", outside, "ts is outside data.min_ts..data.max_ts"
    if window.partition_tolerance_ms is None or readers.FILE_COLUMN not in raw.schema.names:
        return
    files = raw.column(readers.FILE_COLUMN)
    days = {f: partition_day_ms(f) for f in pc.unique(files).to_pylist() if f is not None}
    if not any(d is not None for d in days.values()):
        return
    day = pa.array([days.get(f) for f in files.to_pylist()], pa.int64())
    tolerance = window.partition_tolerance_ms
    early = pc.less(ts, pc.subtract(day, tolerance))
    late = pc.greater_equal(ts, pc.add(day, DAY_MS + tolerance))
    detail = "ts is more than data.partition_tolerance_s from its dt= partition's day"
    yield RejectReason.OUT_OF_RANGE, "ts", pc.or_kleene(early, late), detail


_DETAIL = {
    RejectReason.MALFORMED_ROW: "{} could not be parsed",
    RejectReason.MISSING_FIELD: "{} is required but missing",
    RejectReason.EMPTY_ID: "{} is an empty string",
    RejectReason.BAD_TIMESTAMP: "{} is not int64 ms or ISO-8601",
    RejectReason.UNKNOWN_EVENT_TYPE: "{} is not one of " + ", ".join(schema.EVENT_TYPES),
    RejectReason.BAD_VALUE: "{} is not a finite number (>= 0 where required)",
    RejectReason.OUT_OF_RANGE: "{} is outside data.start..data.end",
}


def validate_batch(
    raw: pa.RecordBatch,
    table: schema.Table,
    window: Window = Window(),
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Splits a raw-string batch (from `readers.read_batches`) into accepted and rejected rows.

    Args:
      max_chars: text values longer than this are bad_value (`data.max_value_chars`).

    Returns:
      (accepted rows in contract types plus `_file`/`_row`,
       rejected rows with their raw text plus `_file`, `_row`, `reason`, `detail`; a
       malformed row also keeps `_raw` and `_line`).
    """
    typed = readers.to_contract_types(raw, table)
    n = raw.num_rows
    reason = np.full(n, -1, dtype=np.int8)
    detail = np.empty(n, dtype=object)
    if readers.MALFORMED_COLUMN in raw.schema.names:
        why = raw.column(readers.MALFORMED_COLUMN)
        hit = pc.is_valid(why).to_numpy(zero_copy_only=False)
        reason[hit] = REASON_ORDER.index(RejectReason.MALFORMED_ROW)
        detail[hit] = np.array(why.to_pylist(), dtype=object)[hit]
    for rejected_for, column, mask, text in _checks(raw, typed, table, window, max_chars):
        hit = pc.fill_null(mask, False).to_numpy(zero_copy_only=False) & (reason == -1)
        reason[hit] = REASON_ORDER.index(rejected_for)
        detail[hit] = text or _DETAIL[rejected_for].format(column)
    ok = reason == -1
    accepted = typed.filter(pa.array(ok))
    bad = ~ok
    kept = [c for c in raw.schema.names if c not in _READER_ONLY]
    rejected = raw.select(kept).filter(pa.array(bad))
    rejected = rejected.append_column(
        REASON_COLUMN, pa.array([REASON_ORDER[i].value for i in reason[bad]], pa.string())
    ).append_column(DETAIL_COLUMN, pa.array(detail[bad].tolist(), pa.string()))
    return accepted, rejected


def reject_counts(rejected: pa.RecordBatch) -> dict[str, int]:
    """Rows per reason, every reason present (zeros included)."""
    counts = dict.fromkeys(schema.REJECT_REASONS, 0)
    for entry in pc.value_counts(rejected.column(REASON_COLUMN)).to_pylist():
        counts[entry["values"]] += entry["counts"]
    return counts
