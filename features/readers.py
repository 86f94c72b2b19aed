"""Readers for raw log tables in Parquet, CSV or JSON Lines, optionally `dt=` partitioned.

Reading happens in two stages so that bad rows can be reported exactly:

1. `read_batches` yields *raw strings*: every contract column of the table as the textual
   form of the original value (null when the column or value is missing), plus `_file` and
   `_row` (0-based row within the file: data row for CSV and Parquet, line for JSON Lines).
   The validator puts these strings into the dead-letter output.
2. `to_contract_types` (from mtlrec.features.contract_types) parses them into the contract types.
   A value that does not parse becomes null, so `raw is not null and typed is null` marks a
   bad value or timestamp.

CSV has no null: an empty field of a column the contract does not require in every row
(`Column.required` false) is read as missing; in a required column it stays "" (an empty id).

A row that does not parse (a CSV/TSV row with the wrong number of fields, a JSON line that is
not a JSON object) comes in a batch of its own: every contract column null, plus `_raw` (its
text, at most `MAX_RAW_CHARS` characters), `_line` (1-based line in the file) and
`_malformed` (why); the validator rejects it as `malformed_row`. A CSV/TSV row holding
bytes that are not UTF-8 is malformed too; its `_raw` is its contract fields, decoded with
replacement characters, joined by the delimiter. A file that is empty or
cannot be read raises `BadFileError` (rows it yielded before the fault stay read).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from mtlrec.features import schema
from mtlrec.features.contract_types import (
    FILE_COLUMN,
    ROW_COLUMN,
    as_text,
    contract_schema,
    to_contract_types,
)

__all__ = [
    "FILE_COLUMN",
    "LINE_COLUMN",
    "MALFORMED_COLUMN",
    "MAX_RAW_CHARS",
    "NESTED_COLUMN",
    "RAW_COLUMN",
    "BadFileError",
    "ROW_COLUMN",
    "RawFile",
    "contract_schema",
    "discover",
    "read_batches",
    "read_table",
    "to_contract_types",
]

_FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
RAW_COLUMN = "_raw"
LINE_COLUMN = "_line"
MALFORMED_COLUMN = "_malformed"
NESTED_COLUMN = "_nested"
"""JSON Lines: the columns of a row whose value is an object or array (a scalar is expected)."""
MAX_RAW_CHARS = 1000
"""A malformed row's text is kept up to this many characters: enough to see what broke,
bounded so one runaway line cannot bloat the dead-letter output."""


class BadFileError(ValueError):
    """A raw file that is empty or cannot be read; the validate job counts and skips it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class RawFile:
    """One raw file: its path, format ("parquet", "csv", "tsv" or "jsonl") and `dt=` partition."""

    path: str
    format: str
    dt: str | None


def _raw_file(path: Path) -> RawFile:
    dts = [m.group(1) for part in path.parts if (m := _DT.match(part))]
    return RawFile(str(path), _FORMATS[path.suffix.lower()], dts[-1] if dts else None)


def _check_date(value: str) -> None:
    # Shape only: open bounds such as "0000-00-00" / "9999-99-99" compare correctly as text.
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"dates: {value!r} is not a YYYY-MM-DD date")


def discover(
    raw_dir: str | Path, table: str, dates: tuple[str, str] | None = None
) -> list[RawFile]:
    """Lists the files of `table`: `<raw_dir>/<table>.<ext>` and every file under `<raw_dir>/<table>/`.

    Args:
      raw_dir: the raw-contract directory.
      table: a name of `schema.TABLES`.
      dates: inclusive (start, end) YYYY-MM-DD; keeps only `dt=` partitions in that range
        (files outside any `dt=` partition are always kept).

    Raises:
      ValueError: unknown table, a file with an unsupported extension, or a required table
        without any file.
    """
    if table not in schema.TABLES:
        raise ValueError(f"unknown table {table!r}; tables: {sorted(schema.TABLES)}")
    root = Path(raw_dir)
    paths = [root / f"{table}{ext}" for ext in _FORMATS if (root / f"{table}{ext}").is_file()]
    table_dir = root / table
    if table_dir.is_dir():
        for path in table_dir.rglob("*"):
            hidden = any(p.startswith((".", "_")) for p in path.relative_to(table_dir).parts)
            if not path.is_file() or hidden:
                continue
            if path.suffix.lower() not in _FORMATS:
                raise ValueError(
                    f"{path}: unsupported file type; raw files must end in "
                    f"{', '.join(_FORMATS)} (hidden or _-prefixed files are ignored)"
                )
            paths.append(path)
    files = [_raw_file(p) for p in sorted(paths)]
    required = schema.TABLES[table].required
    if not files and required:
        raise ValueError(
            f"no {table!r} files in {root}: expected {root}/{table}.parquet (or .csv, .jsonl, "
            f".json) or files under {root}/{table}/, optionally in dt=YYYY-MM-DD/ partitions"
        )
    if dates is not None:
        _check_date(dates[0])
        _check_date(dates[1])
        files = [f for f in files if f.dt is None or dates[0] <= f.dt <= dates[1]]
        if not files and required:
            raise ValueError(
                f"no {table!r} files in {root} inside dates {dates[0]}..{dates[1]}: "
                f"widen the date range or check the dt=YYYY-MM-DD partition names"
            )
    return files


def _with_provenance(columns: dict[str, pa.Array], path: str, first_row: int) -> pa.RecordBatch:
    n = len(next(iter(columns.values())))
    columns[FILE_COLUMN] = pa.repeat(pa.scalar(path, pa.string()), n)
    columns[ROW_COLUMN] = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    return pa.RecordBatch.from_pydict(columns)


def _parquet_batches(
    source: str | BinaryIO, path: str, table: schema.Table, batch_size: int
) -> Iterator[pa.RecordBatch]:
    reader = pq.ParquetFile(source)
    present = [c for c in table.column_names if c in reader.schema_arrow.names]
    row = 0
    for batch in reader.iter_batches(batch_size=batch_size, columns=present):
        columns = {
            name: as_text(batch.column(name))
            if name in present
            else pa.nulls(batch.num_rows, pa.string())
            for name in table.column_names
        }
        yield _with_provenance(columns, path, row)
        row += batch.num_rows


def _tsv_batches(
    source: str | BinaryIO, path: str, table: schema.Table, batch_size: int
) -> Iterator[pa.RecordBatch]:
    return _csv_batches(source, path, table, batch_size, delimiter="\t")


class _InvalidRows:
    """pyarrow's `invalid_row_handler`: keeps each row whose field count is not the
    header's (line, text, why) and has the parser skip it."""

    def __init__(self) -> None:
        self.rows: list[tuple[int | None, str, str]] = []
        self.data_rows: list[int] = []
        """0-based data rows skipped so far, ascending: where the parsed rows' `_row` shifts."""

    def __call__(self, row) -> str:
        # row.number is the 1-based physical line (the header is line 1); None if unknown.
        why = f"has {row.actual_columns} fields, the header has {row.expected_columns}"
        self.rows.append((row.number, row.text, why))
        if row.number is not None:
            self.data_rows.append(row.number - 2)
        return "skip"

    def data_row(self, parsed: np.ndarray) -> np.ndarray:
        """0-based data rows of parsed-row ordinals: each skipped row before one moves it on."""
        actual = parsed.copy()
        for skipped in self.data_rows:
            actual += actual >= skipped
        return actual

    def take(self) -> list[tuple[int | None, str, str]]:
        taken, self.rows = self.rows, []
        return taken


def _malformed_batch(
    names: tuple[str, ...], path: str, rows: list[tuple[int | None, int | None, str, str]]
) -> pa.RecordBatch:
    """A batch of unparseable rows given as (row, line, text, why): contract columns null."""
    n = len(rows)
    columns: dict[str, pa.Array] = {name: pa.nulls(n, pa.string()) for name in names}
    columns[FILE_COLUMN] = pa.repeat(pa.scalar(path, pa.string()), n)
    columns[ROW_COLUMN] = pa.array([r[0] for r in rows], pa.int64())
    columns[RAW_COLUMN] = pa.array([r[2][:MAX_RAW_CHARS] for r in rows], pa.string())
    columns[LINE_COLUMN] = pa.array([r[1] for r in rows], pa.int64())
    columns[MALFORMED_COLUMN] = pa.array([r[3] for r in rows], pa.string())
    return pa.RecordBatch.from_pydict(columns)


def _csv_malformed(
    names: tuple[str, ...], path: str, invalid: _InvalidRows
) -> Iterator[pa.RecordBatch]:
    rows = [
        (None if line is None else line - 2, line, text, why) for line, text, why in invalid.take()
    ]
    if rows:
        yield _malformed_batch(names, path, rows)


def _csv_batches(
    source: str | BinaryIO,
    path: str,
    table: schema.Table,
    batch_size: int,
    delimiter: str = ",",
) -> Iterator[pa.RecordBatch]:
    names = table.column_names
    # Bytes, not text: one value that is not UTF-8 would fail its whole block as text.
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.binary()),
        include_columns=list(names),
        include_missing_columns=True,
    )
    # One thread: the invalid-row handler then knows each skipped row's line number.
    read = pcsv.ReadOptions(block_size=max(1 << 20, batch_size * 64), use_threads=False)
    invalid = _InvalidRows()
    parse = pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid)
    batches = pcsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
    row = 0
    for batch in batches:
        text, not_utf8 = _as_text(batch, names)
        data_rows = invalid.data_row(np.arange(row, row + batch.num_rows, dtype=np.int64))
        for i in np.flatnonzero(not_utf8):
            values = (text[n][i].as_py() for n in names)
            fields = delimiter.join("" if v is None else v for v in values)
            invalid.rows.append((int(data_rows[i]) + 2, fields, "not valid UTF-8"))
        keep = pa.array(~not_utf8)
        columns = {}
        for column in table.columns:
            values = text[column.name].filter(keep)
            if not column.required:
                values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
            columns[column.name] = values
        kept = int((~not_utf8).sum())
        columns[FILE_COLUMN] = pa.repeat(pa.scalar(path, pa.string()), kept)
        columns[ROW_COLUMN] = pa.array(data_rows[~not_utf8])
        if kept:
            yield pa.RecordBatch.from_pydict(columns)
        row += batch.num_rows
        yield from _csv_malformed(names, path, invalid)
    yield from _csv_malformed(names, path, invalid)


def _as_text(
    batch: pa.RecordBatch, names: tuple[str, ...]
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The batch's binary columns as text (bytes that are not UTF-8 decoded with replacement
    characters) and which rows held such bytes."""
    not_utf8 = np.zeros(batch.num_rows, dtype=bool)
    text: dict[str, pa.Array] = {}
    for name in names:
        values = batch.column(name)
        try:
            text[name] = pc.cast(values, pa.string())
            continue
        except pa.ArrowInvalid:
            pass
        decoded = []
        for i, value in enumerate(values.to_pylist()):
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(value.decode("utf-8", errors="replace"))
                not_utf8[i] = True
        text[name] = pa.array(decoded, pa.string())
    return text, not_utf8


def _json_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def _json_record(line: bytes) -> tuple[dict | None, str | None]:
    """(the line's JSON object, None) or (None, why it is not one)."""
    try:
        record = json.loads(line)
    except ValueError as e:
        return None, f"not valid JSON: {getattr(e, 'msg', e)}"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not an object"
    return record, None


def _jsonl_batches(
    source: str | BinaryIO, path: str, table: schema.Table, batch_size: int
) -> Iterator[pa.RecordBatch]:
    names = table.column_names
    handle = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115
    try:
        pending: dict[str, list[str | None]] = {n: [] for n in names}
        nested: list[list[str] | None] = []
        rows: list[int] = []
        malformed: list[tuple[int | None, int | None, str, str]] = []
        # readline, not iteration: Beam's CompressedFile handles are not iterable
        for line_no, line in enumerate(iter(handle.readline, b"")):
            if not line.strip():
                continue
            record, why = _json_record(line)
            if record is None:
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                malformed.append((line_no, line_no + 1, text, why))
                continue
            row_nested = None
            for n in names:
                value = record.get(n)
                if value is None or type(value) is str:
                    pending[n].append(value)  # the common case, kept cheap
                    continue
                if isinstance(value, dict | list):
                    row_nested = [*(row_nested or ()), n]
                pending[n].append(_json_text(value))
            nested.append(row_nested)
            rows.append(line_no)
            if len(rows) == batch_size:
                yield _json_batch(pending, nested, rows, path)
                pending, nested, rows = {n: [] for n in names}, [], []
        if rows:
            yield _json_batch(pending, nested, rows, path)
        if malformed:
            yield _malformed_batch(names, path, malformed)
    finally:
        if isinstance(source, str):
            handle.close()


def _json_batch(
    pending: dict[str, list[str | None]],
    nested: list[list[str] | None],
    rows: list[int],
    path: str,
) -> pa.RecordBatch:
    columns = {n: pa.array(v, pa.string()) for n, v in pending.items()}
    columns[FILE_COLUMN] = pa.repeat(pa.scalar(path, pa.string()), len(rows))
    columns[ROW_COLUMN] = pa.array(rows, pa.int64())
    if any(nested):
        # Only batches with an object or array value carry the column the validator reads.
        columns[NESTED_COLUMN] = pa.array(nested, pa.list_(pa.string()))
    return pa.RecordBatch.from_pydict(columns)


_READERS = {
    "parquet": _parquet_batches,
    "csv": _csv_batches,
    "tsv": _tsv_batches,
    "jsonl": _jsonl_batches,
}


class _ReadOnlyStream(io.RawIOBase):
    """Adapts an object with only `read` (e.g. Beam's CompressedFile) to a real stream."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_batches(
    path: str,
    fmt: str,
    table: schema.Table,
    batch_size: int = 65536,
    file_obj: BinaryIO | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yields the raw-string batches of one file (see the module docstring).

    Args:
      path: the file's path (also written to `_file`).
      fmt: "parquet", "csv", "tsv" or "jsonl".
      table: the contract table whose columns are read; other columns are dropped.
      batch_size: rows per batch (CSV batches follow the reader's blocks instead).
      file_obj: an open binary file to read instead of opening `path` (Beam fileio, GCS).

    Raises:
      BadFileError: the file is empty (0 bytes; checked here only without `file_obj`) or
        cannot be read.
    """
    if fmt not in _READERS:
        raise ValueError(f"{path}: unknown format {fmt!r}; formats: {sorted(_READERS)}")
    if file_obj is None and os.path.getsize(path) == 0:
        raise BadFileError(path, "empty file (0 bytes)")
    rows = 0
    try:
        if file_obj is not None and fmt == "parquet" and not file_obj.seekable():
            file_obj = io.BytesIO(file_obj.read())  # Parquet needs random access to its footer
        elif file_obj is not None and fmt in _DELIMITERS and not isinstance(file_obj, io.IOBase):
            file_obj = io.BufferedReader(_ReadOnlyStream(file_obj))
        source = file_obj if file_obj is not None else path
        for batch in _READERS[fmt](source, path, table, batch_size):
            rows += batch.num_rows
            yield batch
    except (pa.ArrowException, OSError, UnicodeError, EOFError) as e:
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        after = f" after {rows} rows" if rows else ""
        raise BadFileError(path, f"unreadable {fmt}{after}: {cause}") from e


def read_table(raw_dir: str | Path, table: str) -> pa.Table:
    """Reads every file of `table` into one typed table of contract columns (small data only)."""
    files = discover(raw_dir, table)
    spec = schema.TABLES[table]
    batches = [
        to_contract_types(batch, spec).select(list(spec.column_names))
        for f in files
        for batch in read_batches(f.path, f.format, spec)
    ]
    return pa.Table.from_batches(batches, schema=contract_schema(spec))


def column_names(file: RawFile) -> tuple[str, ...]:
    """The columns a raw file holds (Parquet schema, CSV header, keys of the first JSON line);
    reads only what it takes to know them.

    Raises:
      BadFileError: a Parquet file that is empty or has no readable footer.
    """
    with open(file.path, "rb") as f:
        if file.format == "parquet":
            try:
                return tuple(pq.read_schema(f).names)
            except pa.ArrowException as e:
                reason = "empty file (0 bytes)" if os.path.getsize(file.path) == 0 else str(e)
                raise BadFileError(file.path, reason) from e
        lines = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
        if file.format in _DELIMITERS:
            header = csv.reader([lines.readline()], delimiter=_DELIMITERS[file.format])
            return tuple(next(header, []))
        first = next((line for line in lines if line.strip()), "{}")
    try:
        document = json.loads(first)
    except json.JSONDecodeError:
        raise ValueError(f"{file.path}: the first line is not a JSON object") from None
    return tuple(document) if isinstance(document, dict) else ()
