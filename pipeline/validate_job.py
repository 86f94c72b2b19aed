"""The validate Beam pipeline: read → validate → dedupe → write (SPEC §11).

Outputs under the step directory: `<table>/*.parquet` (accepted rows in contract types),
`dead_letter/<table>-*.jsonl` (rejected rows: raw values, `_file`, `_row`, `reason`,
`detail`), `duplicates/<table>-*.jsonl` (dropped copies and the copy kept), `_counts.json`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from features import readers, schema
from pipeline import beam_io, interactions, keyed
from pipeline.arrow_coder import RecordBatch
from pipeline.step_files import FileOutput, JsonLinesShards, ParquetShards, WriteFiles
from pipeline.validate import Window, reject_counts, validate_batch

ORDER_COLUMNS = (readers.FILE_COLUMN, readers.ROW_COLUMN)


class _ValidateFn(beam.DoFn):
    """Main output: accepted typed batches; tagged `rejected` rows and `counts` dicts."""

    def __init__(self, table: schema.Table, window: Window):
        self._table = table
        self._window = window

    def process(self, raw: pa.RecordBatch):
        accepted, rejected = validate_batch(raw, self._table, self._window)
        yield beam.pvalue.TaggedOutput(
            "counts",
            {self._table.name: {"read": raw.num_rows, "rejected": reject_counts(rejected)}},
        )
        if rejected.num_rows:
            yield from (beam.pvalue.TaggedOutput("rejected", r) for r in rejected.to_pylist())
        if accepted.num_rows:
            yield accepted


class _DedupeBucketFn(beam.DoFn):
    """Keeps the copy of each key with the smallest (_file, _row); the rest are duplicates."""

    def __init__(self, table: schema.Table):
        self._table = table

    def process(self, element: tuple[int, Iterable[pa.RecordBatch]]):
        _, batches = element
        rows = keyed.concat(batches, beam_io.typed_schema(self._table))
        key = self._table.key
        first = keyed.first_per_key(rows, [key], ORDER_COLUMNS)
        kept = rows.filter(pa.array(first))
        dropped = rows.filter(pa.array(~first))
        counts = {"duplicates": dropped.num_rows, "accepted": _accepted(kept)}
        if "event_type" not in kept.schema.names:
            # Tables without event types: which columns the data really has (a pre-joined
            # interactions table may lack a label column entirely).
            counts["non_null"] = {
                c: kept.num_rows - kept.column(c).null_count for c in self._table.column_names
            }
        yield beam.pvalue.TaggedOutput("counts", {self._table.name: counts})
        yield from keyed.to_batches(kept)
        if dropped.num_rows:
            yield from (
                beam.pvalue.TaggedOutput("duplicates", r)
                for r in _duplicate_records(kept, dropped, key)
            )


def _accepted(kept: pa.Table) -> dict[str, int]:
    """Accepted rows by event type (events) or as "rows" (other tables)."""
    if "event_type" not in kept.schema.names:
        return {"rows": kept.num_rows}
    return {
        e["values"]: e["counts"] for e in pc.value_counts(kept.column("event_type")).to_pylist()
    }


def _duplicate_records(kept: pa.Table, dropped: pa.Table, key: str) -> list[dict]:
    """Where every dropped copy came from and which copy was kept instead."""
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


@beam.ptransform_fn
def ValidateRows(  # noqa: N802
    raw: beam.PCollection, table: schema.Table, window: Window
) -> beam.pvalue.DoOutputsTuple:
    """Validated batches (main), `rejected` row dicts and `counts` dicts."""
    return raw | "Validate" >> beam.ParDo(_ValidateFn(table, window)).with_output_types(
        RecordBatch
    ).with_outputs("rejected", "counts", main="accepted")


@beam.ptransform_fn
def DropDuplicates(  # noqa: N802
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


@dataclasses.dataclass(frozen=True)
class TableSource:
    """The files of one table, its contract, and the contract under the files' column names."""

    files: Sequence[readers.RawFile]
    contract: schema.Table
    in_files: schema.Table


def validate_outputs(
    step_dir: pathlib.Path, sources: Mapping[str, TableSource]
) -> dict[str, FileOutput]:
    """The validate step's files (`pipeline.step_files.FileOutput`) by output name."""
    outputs = {beam_io.COUNTS_FILE: beam_io.counts_output(str(step_dir))}
    for name, source in sources.items():
        parquet = ParquetShards(beam_io.typed_schema(source.contract))
        outputs[name] = FileOutput(str(step_dir / name / "part"), parquet)
        for kind in ("dead_letter", "duplicates"):
            outputs[f"{kind}/{name}"] = FileOutput(str(step_dir / kind / name), JsonLinesShards())
    return outputs


def build_validate_pipeline(
    pipeline: beam.Pipeline,
    sources: Mapping[str, TableSource],
    step_dir: pathlib.Path,
    window: Window,
    buckets: int = keyed.DEFAULT_BUCKETS,
) -> dict[str, beam.PCollection]:
    """Adds read → validate → dedupe → write for every table of `sources` to `pipeline`.

    Returns the accepted, deduplicated rows of every table (RecordBatches of
    `beam_io.typed_schema`), for a preprocess job built into the same pipeline.
    """
    counts = []
    files = {}
    for name, source in sources.items():
        table = source.contract
        raw = pipeline | f"Read[{name}]" >> beam_io.ReadRawTable(source.files, source.in_files)
        if source.in_files != table:
            raw = raw | f"ContractNames[{name}]" >> beam.Map(interactions.to_contract_names, table)
        checked = raw | f"Validate[{name}]" >> ValidateRows(table, window)
        unique = checked.accepted | f"Dedupe[{name}]" >> DropDuplicates(table, buckets)
        files[name] = unique.kept
        files[f"dead_letter/{name}"] = checked.rejected
        files[f"duplicates/{name}"] = unique.duplicates
        counts.extend([checked.counts, unique.counts])
    files[beam_io.COUNTS_FILE] = tuple(counts) | "Counts" >> beam_io.TotalCounts()
    _ = files | "WriteFiles" >> WriteFiles(validate_outputs(step_dir, sources), str(step_dir))
    return {name: files[name] for name in sources}
