"""Typed view of raw-string batches: the contract types of `mtlrec.features.schema` (SPEC §4).

A value that does not parse becomes null, so `raw is not null and typed is null` marks
a bad value or timestamp for the validator. Everything is vectorised with pyarrow compute;
only an impossible ISO date (such as month 13) sends its batch through a per-row fallback.
"""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import schema

FILE_COLUMN = "_file"
ROW_COLUMN = "_row"
_INT_RE = r"^[+-]?\d{1,18}$"
_FLOAT_RE = r"^[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?|nan|inf|infinity)$"
_ISO_RE = (
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_ZONED_RE = r"[T ].*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_MAX_EXACT_FLOAT_INT = 2.0**53
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def as_text(array: pa.Array) -> pa.Array:
    """Any Arrow array as its string form (nulls stay null)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    # Timestamps print as ISO text ("2026-01-01 00:00:00.000Z"), which _parse_timestamp reads.
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _null_unless(mask: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(mask, values, pa.scalar(None, values.type))


def _parse_float(text: pa.Array) -> pa.Array:
    lowered = pc.utf8_lower(text)
    return pc.cast(
        _null_unless(pc.match_substring_regex(lowered, _FLOAT_RE), lowered), pa.float64()
    )


def _parse_int(text: pa.Array) -> pa.Array:
    """Integers, and integral finite floats such as "5.0" (how float columns print ints)."""
    exact = pc.cast(_null_unless(pc.match_substring_regex(text, _INT_RE), text), pa.int64())
    if exact.null_count == text.null_count:
        return exact  # every value spelled as an integer: no float spellings to try
    as_float = _parse_float(text)
    integral = pc.and_(
        pc.equal(pc.floor(as_float), as_float), pc.less(pc.abs(as_float), _MAX_EXACT_FLOAT_INT)
    )
    return pc.coalesce(exact, pc.cast(_null_unless(integral, as_float), pa.int64()))


def _iso_ns(text: pa.Array, target: pa.DataType) -> pa.Array:
    try:
        return pc.cast(pc.cast(text, target), pa.int64())
    except pa.ArrowInvalid:  # an impossible date such as month 13: parse this batch row by row
        return pa.array([_iso_ns_one(s) for s in text.to_pylist()], pa.int64())


def _iso_ns_one(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return (parsed - _EPOCH) // datetime.timedelta(microseconds=1) * 1000


def _parse_timestamp(text: pa.Array, scale: float = 1.0) -> pa.Array:
    """Integer milliseconds (numbers times `scale` in another unit), or ISO-8601 with or
    without zone (naive means UTC), to int64 ms."""
    millis = _parse_int(text) if scale == 1.0 else _scaled_int(_parse_float(text), scale)
    if millis.null_count == text.null_count:
        return millis  # every value in milliseconds: no ISO-8601 text to parse
    iso = pc.match_substring_regex(text, _ISO_RE)
    zoned = pc.and_(iso, pc.match_substring_regex(text, _ZONED_RE))
    naive = pc.and_(iso, pc.invert(zoned))
    nanos = pc.coalesce(
        _iso_ns(_null_unless(zoned, text), pa.timestamp("ns", tz="UTC")),
        _iso_ns(_null_unless(naive, text), pa.timestamp("ns")),
    )
    from_iso = pa.array(
        np.floor_divide(pc.fill_null(nanos, 0).to_numpy(), 1_000_000),
        pa.int64(),
        mask=pc.is_null(nanos).to_numpy(zero_copy_only=False),
    )
    return pc.coalesce(millis, from_iso)


def _scaled_int(values: pa.Array, scale: float) -> pa.Array:
    finite = pc.is_finite(values)
    scaled = pc.floor(pc.multiply(_null_unless(finite, values), scale))
    return pc.cast(scaled, pa.int64())


def _typed(text: pa.Array, column: schema.Column) -> pa.Array:
    text = as_text(text)
    if column.type is schema.ColumnType.STRING:
        return text
    trimmed = pc.utf8_trim_whitespace(text)
    if column.type is schema.ColumnType.INT:
        return _parse_int(trimmed)
    if column.type is schema.ColumnType.FLOAT:
        values = _parse_float(trimmed)
        return values if column.scale == 1.0 else pc.multiply(values, column.scale)
    return _parse_timestamp(trimmed, column.scale)


def to_contract_types(batch: pa.RecordBatch, table: schema.Table) -> pa.RecordBatch:
    """Parses a raw-string batch into contract types; unparseable values become null.

    STRING → string, INT → int64, FLOAT → float64 (NaN/inf kept), TIMESTAMP → int64 ms UTC.
    `_file` and `_row` are passed through when present.
    """
    columns = {c.name: _typed(batch.column(c.name), c) for c in table.columns}
    for extra in (FILE_COLUMN, ROW_COLUMN):
        if extra in batch.schema.names:
            columns[extra] = batch.column(extra)
    return pa.RecordBatch.from_pydict(columns)


def contract_schema(table: schema.Table) -> pa.Schema:
    """The Arrow schema of `to_contract_types` output (without `_file`/`_row`)."""
    types = {
        schema.ColumnType.STRING: pa.string(),
        schema.ColumnType.INT: pa.int64(),
        schema.ColumnType.FLOAT: pa.float64(),
        schema.ColumnType.TIMESTAMP: pa.int64(),
    }
    return pa.schema([(c.name, types[c.type]) for c in table.columns])
