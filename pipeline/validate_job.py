"""The validate Beam pipeline: read → validate → dedupe → write (SPEC §11).

Outputs under the step directory: `<table>/*.parquet` (accepted rows in contract types),
`dead_letter/<table>-*.jsonl` (rejected rows: raw values, `_file`, `_row`, `reason`,
`detail`; a `malformed_row` also `_raw` and `_line`), `duplicates/<table>-*.jsonl` (dropped copies and the copy kept), `_counts.json`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa

from mtlrec.features import readers, schema
from mtlrec.pipeline import beam_io, interactions, keyed, user_buckets
from mtlrec.pipeline.arrow_coder import RecordBatch
from mtlrec.pipeline.dedupe import DropDuplicates
from mtlrec.pipeline.step_files import FileOutput, JsonLinesShards, ParquetShards, WriteFiles
from mtlrec.pipeline.validate import DEFAULT_MAX_CHARS, Window, reject_counts, validate_batch


class _ValidateFn(beam.DoFn):
    """Main output: accepted typed batches; tagged `rejected` rows and `counts` dicts."""

    def __init__(self, table: schema.Table, window: Window, max_chars: int):
        self._table = table
        self._window = window
        self._max_chars = max_chars

    def process(self, raw: pa.RecordBatch):
        accepted, rejected = validate_batch(raw, self._table, self._window, self._max_chars)
        yield beam.pvalue.TaggedOutput(
            "counts",
            {self._table.name: {"read": raw.num_rows, "rejected": reject_counts(rejected)}},
        )
        if rejected.num_rows:
            yield from (beam.pvalue.TaggedOutput("rejected", r) for r in rejected.to_pylist())
        if accepted.num_rows:
            yield accepted


@beam.ptransform_fn
def ValidateRows(  # noqa: N802
    raw: beam.PCollection,
    table: schema.Table,
    window: Window,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> beam.pvalue.DoOutputsTuple:
    """Validated batches (main), `rejected` row dicts and `counts` dicts."""
    fn = _ValidateFn(table, window, max_chars)
    return raw | "Validate" >> beam.ParDo(fn).with_output_types(RecordBatch).with_outputs(
        "rejected", "counts", main="accepted"
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
    """The validate step's files (`mtlrec.pipeline.step_files.FileOutput`) by output name."""
    outputs = {beam_io.COUNTS_FILE: beam_io.counts_output(str(step_dir))}
    for name, source in sources.items():
        parquet = ParquetShards(beam_io.typed_schema(source.contract))
        outputs[name] = FileOutput(str(step_dir / name / "part"), parquet)
        for kind in ("dead_letter", "duplicates"):
            outputs[f"{kind}/{name}"] = FileOutput(str(step_dir / kind / name), JsonLinesShards())
    return outputs


class Validated(NamedTuple):
    """What the validate job hands a preprocess job built into the same pipeline."""

    tables: dict[str, beam.PCollection]
    """The accepted, deduplicated rows (RecordBatches of `beam_io.typed_schema`) by table."""
    by_user: user_buckets.UserBuckets | None
    """The events and users deduped and grouped by user bucket."""


def _bad_file_counts(bad: tuple[str, str], table: str) -> dict[str, dict[str, dict[str, str]]]:
    path, reason = bad
    return {table: {"bad_files": {path: reason}}}


def _is_raw(sources: Mapping[str, TableSource], table: schema.Table) -> bool:
    return table.name in sources and sources[table.name].contract == table


def build_validate_pipeline(
    pipeline: beam.Pipeline,
    sources: Mapping[str, TableSource],
    step_dir: pathlib.Path,
    window: Window,
    buckets: int = keyed.DEFAULT_BUCKETS,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress_dir: str | None = None,
) -> Validated:
    """Adds read → validate → dedupe → write for every table of `sources` to `pipeline`.

    The raw events and users are deduped in `user_buckets.GroupByUser`, other tables by their
    key (`dedupe.DropDuplicates`). A bad file is counted under `<table>.bad_files` (its path
    → the reason) and skipped. The files' reading progress is recorded in `progress_dir`.
    """
    accepted, files, counts = {}, {}, []
    for name, source in sources.items():
        table = source.contract
        read = pipeline | f"Read[{name}]" >> beam_io.ReadRawTable(
            source.files, source.in_files, progress_dir=progress_dir
        )
        counts.append(read.bad_files | f"BadFiles[{name}]" >> beam.Map(_bad_file_counts, name))
        raw = read.batches
        if source.in_files != table:
            raw = raw | f"ContractNames[{name}]" >> beam.Map(interactions.to_contract_names, table)
        checked = raw | f"Validate[{name}]" >> ValidateRows(table, window, max_chars)
        accepted[name] = checked.accepted
        files[f"dead_letter/{name}"] = checked.rejected
        counts.append(checked.counts)
    resolved = None
    if _is_raw(sources, schema.EVENTS):
        raw_tables = [t.name for t in user_buckets.TABLES if _is_raw(sources, t)]
        by_user = {name: accepted.pop(name) for name in raw_tables}
        resolved = by_user | "Dedupe[events, users]" >> user_buckets.GroupByUser(buckets)
        files.update(resolved.tables)
        files.update({f"duplicates/{n}": d for n, d in resolved.duplicates.items()})
        counts.extend(resolved.counts)
    for name, rows in accepted.items():
        unique = rows | f"Dedupe[{name}]" >> DropDuplicates(sources[name].contract, buckets)
        files[name] = unique.kept
        files[f"duplicates/{name}"] = unique.duplicates
        counts.append(unique.counts)
    files[beam_io.COUNTS_FILE] = tuple(counts) | "Counts" >> beam_io.TotalCounts()
    _ = files | "WriteFiles" >> WriteFiles(validate_outputs(step_dir, sources), str(step_dir))
    return Validated({name: files[name] for name in sources}, resolved)
