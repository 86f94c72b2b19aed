"""Dedupe by a table's key (SPEC §11): the copy with the smallest (_file, _row) is kept.

Two forms:
- `DropDuplicates` shuffles whole rows on the key's hash bucket and dedupes each bucket.
- `FindDuplicates` shuffles only the key and provenance of every row and returns the copies
  to drop, for a later keyed stage that holds the rows anyway (`mtlrec.pipeline.user_buckets`) to
  remove with `drop_rows`. The rows then cross one shuffle fewer.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import readers, schema
from mtlrec.pipeline import beam_io, keyed
from mtlrec.pipeline.arrow_coder import RecordBatch

ORDER_COLUMNS = (readers.FILE_COLUMN, readers.ROW_COLUMN)


def _split_copies(rows: pa.Table, key: str) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """(the first copy of every key, the other copies, the mask of the first copies)."""
    first = keyed.first_per_key(rows, [key], ORDER_COLUMNS)
    return rows.filter(pa.array(first)), rows.filter(pa.array(~first)), first


def dedupe_table(rows: pa.Table, table: schema.Table) -> tuple[pa.Table, dict, list[dict]]:
    """(kept rows, counts, duplicate records) of rows holding every copy of their keys."""
    kept, dropped, _ = _split_copies(rows, table.key)
    counts = {"duplicates": dropped.num_rows, **accepted_counts(kept, table)}
    return kept, {table.name: counts}, duplicate_records(kept, dropped, table.key)


def accepted_counts(kept: pa.Table, table: schema.Table) -> dict:
    """Accepted rows by event type (events), or as "rows" with each column's non-null count
    (other tables: which columns the data really has, as a pre-joined interactions table may
    lack a label column entirely)."""
    if "event_type" in kept.schema.names:
        values = pc.value_counts(kept.column("event_type")).to_pylist()
        return {"accepted": {v["values"]: v["counts"] for v in values}}
    return {
        "accepted": {"rows": kept.num_rows},
        "non_null": {c: kept.num_rows - kept.column(c).null_count for c in table.column_names},
    }


def duplicate_records(kept: pa.Table, dropped: pa.Table, key: str) -> list[dict]:
    """Where every dropped copy came from and which copy was kept instead."""
    if dropped.num_rows == 0:
        return []
    columns = [key, *ORDER_COLUMNS]
    # Only the kept rows of duplicated keys: a bucket has many rows and few duplicates.
    originals = kept.filter(pc.is_in(kept.column(key), value_set=dropped.column(key)))
    kept_at = {
        r[key]: (r[readers.FILE_COLUMN], r[readers.ROW_COLUMN])
        for r in originals.select(columns).to_pylist()
    }
    records = []
    for row in dropped.select(columns).to_pylist():
        kept_file, kept_row = kept_at[row[key]]
        records.append({**row, "kept_file": kept_file, "kept_row": kept_row})
    return records


class _DedupeBucketFn(beam.DoFn):
    """Dedupes the whole rows of one key bucket (`dedupe_table`)."""

    def __init__(self, table: schema.Table):
        self._table = table

    def process(self, element: tuple[int, Iterable[pa.RecordBatch]]):
        rows = keyed.concat(element[1], beam_io.typed_schema(self._table))
        kept, counts, records = dedupe_table(rows, self._table)
        yield beam.pvalue.TaggedOutput("counts", counts)
        yield from keyed.to_batches(kept)
        yield from (beam.pvalue.TaggedOutput("duplicates", r) for r in records)


@beam.ptransform_fn
def DropDuplicates(  # noqa: N802 (Beam transform names are CamelCase)
    accepted: beam.PCollection, table: schema.Table, buckets: int
) -> beam.pvalue.DoOutputsTuple:
    """One row per `table.key` (main), `duplicates` records and `counts` dicts."""
    return (
        accepted
        | "GroupByKey" >> keyed.GroupBuckets([table.key], buckets)
        | "KeepFirst"
        >> beam.ParDo(_DedupeBucketFn(table))
        .with_output_types(RecordBatch)
        .with_outputs("duplicates", "counts", main="kept")
    )


def keys_schema(table: schema.Table, carry: tuple[str, ...]) -> pa.Schema:
    """Schema of `FindDuplicates`' output: the key, the `carry` columns and provenance."""
    typed = beam_io.typed_schema(table)
    columns = dict.fromkeys((table.key, *carry, *ORDER_COLUMNS))
    return pa.schema([typed.field(c) for c in columns])


def _keys(batch: pa.RecordBatch, columns: list[str]) -> pa.RecordBatch:
    return batch.select(columns)


class _FindDuplicatesFn(beam.DoFn):
    """The copies to drop among the keys of one key bucket, and the keys kept."""

    def __init__(self, table: schema.Table, keys_schema: pa.Schema):
        self._table = table
        self._schema = keys_schema

    def process(self, element: tuple[int, Iterable[pa.RecordBatch]]):
        rows = keyed.concat(element[1], self._schema)
        key = rows.column(self._table.key)
        copies = pc.value_counts(key)
        repeated = copies.field("values").filter(pc.greater(copies.field("counts"), 1))
        # Only the copies of repeated keys are sorted: few rows of a bucket are duplicates.
        is_copy = pc.is_in(key, value_set=repeated)
        kept, dropped, first = _split_copies(rows.filter(is_copy), self._table.key)
        yield beam.pvalue.TaggedOutput(
            "counts", {self._table.name: {"duplicates": dropped.num_rows}}
        )
        yield from keyed.to_batches(dropped)
        records = duplicate_records(kept, dropped, self._table.key)
        yield from (beam.pvalue.TaggedOutput("duplicates", r) for r in records)
        keep = np.ones(rows.num_rows, dtype=bool)
        keep[pc.indices_nonzero(is_copy).to_numpy()[~first]] = False
        # The kept keys as they came (no copy into one batch): their consumers only scan them.
        for batch in rows.filter(pa.array(keep)).to_batches():
            if batch.num_rows:
                yield beam.pvalue.TaggedOutput("kept", batch)


@beam.ptransform_fn
def FindDuplicates(  # noqa: N802
    accepted: beam.PCollection, table: schema.Table, carry: tuple[str, ...], buckets: int
) -> beam.pvalue.DoOutputsTuple:
    """The copies to drop (main: RecordBatches of the key, `carry` and provenance columns),
    the same columns of the rows to keep (`kept`), `duplicates` records and `counts` dicts,
    from a shuffle of those columns only.

    `carry` holds the columns a later stage needs to route the dropped copies to their rows,
    or wants of the kept rows before that stage has run.
    """
    columns = keys_schema(table, carry)
    return (
        accepted
        | "Keys" >> beam.Map(_keys, columns.names).with_output_types(RecordBatch)
        | "GroupByKey" >> keyed.GroupBuckets([table.key], buckets)
        | "Copies"
        >> beam.ParDo(_FindDuplicatesFn(table, columns))
        .with_output_types(RecordBatch)
        .with_outputs("kept", "duplicates", "counts", main="dropped")
    )


def drop_rows(rows: pa.Table, dropped: pa.Table) -> pa.Table:
    """`rows` without those whose (_file, _row) is in `dropped`."""
    if dropped.num_rows == 0:
        return rows
    pairs = set(zip(*(dropped.column(c).to_pylist() for c in ORDER_COLUMNS), strict=True))
    # Rows of a dropped row number are few; only they are compared on the file too.
    maybe = pc.is_in(rows.column(readers.ROW_COLUMN), value_set=dropped.column(readers.ROW_COLUMN))
    candidates = pc.indices_nonzero(maybe)
    files = rows.column(readers.FILE_COLUMN).take(candidates).to_pylist()
    row_numbers = rows.column(readers.ROW_COLUMN).take(candidates).to_pylist()
    keep = np.ones(rows.num_rows, dtype=bool)
    keep[candidates.to_numpy()] = [p not in pairs for p in zip(files, row_numbers, strict=True)]
    return rows.filter(pa.array(keep))
