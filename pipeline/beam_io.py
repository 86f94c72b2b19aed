"""Beam sources and sinks of the preprocessing jobs: raw files, Parquet, JSON Lines, counts.

Only file names travel through `beam.Create`; the data is read inside the workers.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa

from features import readers, schema
from pipeline.arrow_coder import RecordBatch, Table

PROVENANCE_FIELDS = (
    pa.field(readers.FILE_COLUMN, pa.string()),
    pa.field(readers.ROW_COLUMN, pa.int64()),
)
COUNTS_FILE = "_counts.json"


def typed_schema(table: schema.Table) -> pa.Schema:
    """Arrow schema of validated rows: contract types plus `_file` / `_row`."""
    return pa.schema([*readers.contract_schema(table), *PROVENANCE_FIELDS])


def _read_file(file: tuple[str, str], table: schema.Table, batch_size: int):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    path, fmt = file
    if "://" not in path:
        yield from readers.read_batches(path, fmt, table, batch_size)
        return
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        yield from readers.read_batches(path, fmt, table, batch_size, file_obj=handle)


@beam.ptransform_fn
def ReadRawTable(  # noqa: N802 (Beam transform names are CamelCase)
    pipeline: beam.Pipeline,
    files: Sequence[readers.RawFile],
    table: schema.Table,
    batch_size: int = 65536,
) -> beam.PCollection:
    """Raw-string RecordBatches (`readers.read_batches`) of every file, read in parallel."""
    return (
        pipeline
        | "FileNames" >> beam.Create([(f.path, f.format) for f in files])
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadFile" >> beam.FlatMap(_read_file, table, batch_size).with_output_types(RecordBatch)
    )


@beam.ptransform_fn
def ReadParquetBatches(  # noqa: N802
    pipeline: beam.Pipeline, pattern: str
) -> beam.PCollection:
    """RecordBatches of the Parquet files matching `pattern`."""
    return (
        pipeline
        | "ReadParquet" >> beam.io.ReadFromParquetBatched(pattern)
        | "ToBatches"
        >> beam.FlatMap(lambda t: (b for b in t.to_batches() if b.num_rows)).with_output_types(
            RecordBatch
        )
    )


@beam.ptransform_fn
def WriteParquet(  # noqa: N802
    batches: beam.PCollection, prefix: str, arrow_schema: pa.Schema, num_shards: int = 0
) -> beam.PCollection:
    """Writes RecordBatches as Parquet shards `<prefix>-SSSSS-of-NNNNN.parquet`."""
    shard_template = "" if num_shards == 1 else None
    return (
        batches
        | "ToTables"
        >> beam.Map(lambda b: pa.Table.from_batches([b], schema=arrow_schema)).with_output_types(
            Table
        )
        | "WriteParquet"
        >> beam.io.WriteToParquetBatched(
            prefix,
            arrow_schema,
            file_name_suffix="" if num_shards == 1 else ".parquet",
            num_shards=num_shards,
            shard_name_template=shard_template,
        )
    )


@beam.ptransform_fn
def WriteJsonLines(  # noqa: N802
    records: beam.PCollection, prefix: str
) -> beam.PCollection:
    """One JSON object per line in `<prefix>-SSSSS-of-NNNNN.jsonl`."""
    return (
        records
        | "ToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True, default=str))
        | "WriteJsonl" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
    )


def add_counts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sum of two nested count dicts (numbers add, sub-dicts merge key by key)."""
    merged = dict(a)
    for key, value in b.items():
        if isinstance(value, Mapping):
            merged[key] = add_counts(merged.get(key, {}), value)
        else:
            merged[key] = merged.get(key, 0) + value
    return merged


class SumCounts(beam.CombineFn):
    """Combines nested count dicts emitted anywhere in the pipeline."""

    def create_accumulator(self) -> dict[str, Any]:
        return {}

    def add_input(self, acc: dict[str, Any], counts: Mapping[str, Any]) -> dict[str, Any]:
        return add_counts(acc, counts)

    def merge_accumulators(self, accs) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for acc in accs:
            merged = add_counts(merged, acc)
        return merged

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        return acc


@beam.ptransform_fn
def WriteCounts(  # noqa: N802
    counts: beam.PCollection, step_dir: str
) -> beam.PCollection:
    """Sums every count dict and writes the total to `<step_dir>/_counts.json`."""
    return (
        counts
        | "Sum" >> beam.CombineGlobally(SumCounts())
        | "ToJson" >> beam.Map(lambda c: json.dumps(c, sort_keys=True))
        | "Write"
        >> beam.io.WriteToText(
            str(pathlib.PurePosixPath(step_dir) / COUNTS_FILE),
            num_shards=1,
            shard_name_template="",
        )
    )


def take_counts(step_dir: pathlib.Path) -> dict[str, Any]:
    """The totals `WriteCounts` wrote (after the pipeline has finished); removes the file."""
    path = step_dir / COUNTS_FILE
    totals = json.loads(path.read_text())
    path.unlink()
    return totals
