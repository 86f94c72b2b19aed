"""Beam sources of the preprocessing jobs (raw files, Parquet) and their counts.

Only file names travel through `beam.Create`; the data is read inside the workers.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from mtlrec.features import readers, schema
from mtlrec.pipeline import progress
from mtlrec.pipeline.arrow_coder import RecordBatch
from mtlrec.pipeline.step_files import FileOutput, JsonLinesShards

PROVENANCE_FIELDS = (
    pa.field(readers.FILE_COLUMN, pa.string()),
    pa.field(readers.ROW_COLUMN, pa.int64()),
)
COUNTS_FILE = "_counts.json"


def typed_schema(table: schema.Table) -> pa.Schema:
    """Arrow schema of validated rows: contract types plus `_file` / `_row`."""
    return pa.schema([*readers.contract_schema(table), *PROVENANCE_FIELDS])


class _ReadFileFn(beam.DoFn):
    """Main output: the raw-string batches of one file; tagged `bad_files`: (path, reason)
    of a file that is empty or cannot be read (the rows it gave before the fault stay)."""

    def __init__(self, table: schema.Table, batch_size: int, progress_dir: str | None):
        self._table = table
        self._batch_size = batch_size
        self._progress_dir = progress_dir

    def process(self, file: tuple[str, str]):
        path, fmt = file
        try:
            for batch in self._batches(path, fmt):
                if self._progress_dir is not None:
                    progress.record(self._progress_dir, path, batch.num_rows)
                yield batch
        except readers.BadFileError as e:
            yield beam.pvalue.TaggedOutput("bad_files", (e.path, e.reason))
        if self._progress_dir is not None:
            progress.record(self._progress_dir, path, 0, done=True)

    def _batches(self, path: str, fmt: str):
        if "://" not in path:
            yield from readers.read_batches(path, fmt, self._table, self._batch_size)
            return
        (match,) = FileSystems.match([path])
        if all(m.size_in_bytes == 0 for m in match.metadata_list):
            raise readers.BadFileError(path, "empty file (0 bytes)")
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            yield from readers.read_batches(
                path, fmt, self._table, self._batch_size, file_obj=handle
            )


@beam.ptransform_fn
def ReadRawTable(  # noqa: N802 (Beam transform names are CamelCase)
    pipeline: beam.Pipeline,
    files: Sequence[readers.RawFile],
    table: schema.Table,
    batch_size: int = 65536,
    progress_dir: str | None = None,
) -> beam.pvalue.DoOutputsTuple:
    """Raw-string RecordBatches (`readers.read_batches`) of every file, read in parallel
    (main output `batches`), and the (path, reason) of every bad file (`bad_files`); the
    rows and files read are recorded in `progress_dir` (`mtlrec.pipeline.progress`)."""
    names = pipeline | "FileNames" >> beam.Create(
        [(f.path, f.format) for f in files], reshuffle=False
    )
    if len(files) > 1:
        # Spreading file names over the workers costs a shuffle stage; one file has none to spread.
        names = names | "SpreadFiles" >> beam.Reshuffle()
    read = beam.ParDo(_ReadFileFn(table, batch_size, progress_dir))
    read = read.with_output_types(RecordBatch)
    return names | "ReadFile" >> read.with_outputs("bad_files", main="batches")


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


def add_counts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sum of two nested count dicts (numbers add, sub-dicts merge key by key, a key only one
    side has is taken as it is)."""
    merged = dict(a)
    for key, value in b.items():
        if isinstance(value, Mapping):
            merged[key] = add_counts(merged.get(key, {}), value)
        elif key in merged:
            merged[key] = merged[key] + value
        else:
            merged[key] = value  # also a text entry, such as a bad file's reason by its path
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
def TotalCounts(  # noqa: N802
    counts: Sequence[beam.PCollection],
) -> beam.PCollection:
    """The sum of every count dict of `counts`: one dict, for `counts_output`."""
    return counts | "All" >> beam.Flatten() | "Sum" >> beam.CombineGlobally(SumCounts())


def counts_output(step_dir: str) -> FileOutput:
    """Where `TotalCounts` goes: `<step_dir>/_counts.json`, read back by `take_counts`."""
    path = str(pathlib.PurePosixPath(step_dir) / COUNTS_FILE)
    return FileOutput(path, JsonLinesShards(), single_file=True)


def take_counts(step_dir: pathlib.Path) -> dict[str, Any]:
    """The totals `WriteCounts` wrote (after the pipeline has finished); removes the file."""
    path = step_dir / COUNTS_FILE
    totals = json.loads(path.read_text())
    path.unlink()
    return totals
