"""The pre-joined interactions form (SPEC §4): one row per impression with its labels.

MovieLens ratings, KuaiRand- or Ali-CCP-style logs arrive as one table whose columns are
joined-example columns (`mtlrec.features.declarations.JOINED_COLUMNS`), possibly under other
names (`data.interactions.columns`: joined column -> file column). The table is validated
like events (missing, empty ids, timestamps, numbers, date window), deduplicated on
`event_id`, and then skips the label join: every accepted row is one example.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import readers, schema
from mtlrec.features.declarations import HISTORY, JOINED_COLUMNS, LABELS, Dtype
from mtlrec.features.schema import Column, ColumnType
from mtlrec.pipeline import beam_io, keyed
from mtlrec.pipeline.column_mapping import in_file_names

KEY = "event_id"
REQUIRED = (KEY, "user_id", "item_id", "ts")
_TYPES = {Dtype.STRING: ColumnType.STRING, Dtype.INT: ColumnType.INT, Dtype.FLOAT: ColumnType.FLOAT}
# Counts, prices, times and positions cannot be negative; ratings and years may be anything.
_NON_NEGATIVE = frozenset(
    {"position", "price", "click", "purchase", "dwell_s", "has_dwell"}
    | {label.source for label in LABELS.values() if label.binary}
)
_EXTENSIONS = (".parquet", ".csv", ".tsv", ".jsonl", ".json")


def _column(name: str) -> Column:
    if name == KEY:
        return Column(KEY, ColumnType.STRING, required=True)
    column_type = ColumnType.TIMESTAMP if name == "ts" else _TYPES[JOINED_COLUMNS[name]]
    return Column(name, column_type, required=name in REQUIRED, non_negative=name in _NON_NEGATIVE)


def table(name: str) -> schema.Table:
    """The contract of an interactions table: event_id plus every joined-example column."""
    return schema.Table(
        name=name,
        key=KEY,
        required=True,
        # The history is the pipeline's (`mtlrec.pipeline.history`), never read from a file.
        columns=tuple(_column(c) for c in (KEY, *JOINED_COLUMNS) if c != HISTORY),
    )


def file_table(contract: schema.Table, mapping: dict[str, str]) -> schema.Table:
    """The same contract under the file's column names (`data.interactions.columns`).

    Raises:
      ValueError: the mapping names a column that is not a joined-example column.
    """
    unknown = sorted(set(mapping) - set(contract.column_names))
    if unknown:
        raise ValueError(
            f"data.interactions.columns: unknown column(s) {unknown}; map joined-example "
            f"columns {sorted(contract.column_names)} to the names in your file"
        )
    return in_file_names(contract, mapping)


def to_contract_names(batch: pa.RecordBatch, contract: schema.Table) -> pa.RecordBatch:
    """Renames the file's columns back to joined-example names (positions are the same)."""
    names = [*contract.column_names, *batch.schema.names[len(contract.columns) :]]
    return batch.rename_columns(names)


def discover(raw_dir: pathlib.Path, name: str) -> list[readers.RawFile]:
    """`<raw_dir>/<name>.<ext>` and every data file under `<raw_dir>/<name>/`.

    Raises:
      ValueError: no file found; the message says where they were expected.
    """
    root = pathlib.Path(raw_dir)
    paths = [root / f"{name}{ext}" for ext in _EXTENSIONS if (root / f"{name}{ext}").is_file()]
    if (root / name).is_dir():
        paths += [
            p
            for p in (root / name).rglob("*")
            if p.is_file()
            and p.suffix.lower() in _EXTENSIONS
            and not any(part.startswith((".", "_")) for part in p.relative_to(root / name).parts)
        ]
    if not paths:
        raise ValueError(
            f"data.interactions: no {name!r} files in {root}: expected {root}/{name}.parquet "
            f"(or .csv, .jsonl) or files under {root}/{name}/"
        )
    return [
        readers.RawFile(str(p), "jsonl" if p.suffix == ".json" else p.suffix[1:], None)
        for p in sorted(paths)
    ]


def typed_schema() -> pa.Schema:
    """Arrow schema of validated interactions (contract types plus `_file` / `_row`)."""
    return beam_io.typed_schema(table("interactions"))


def examples_schema(columns: Sequence[str]) -> pa.Schema:
    """Arrow schema of the examples made of the given joined-example columns."""
    typed = typed_schema()
    return pa.schema([typed.field(c) for c in columns])


def to_examples(batch: pa.RecordBatch, arrow_schema: pa.Schema) -> pa.RecordBatch:
    """The joined-example columns of validated rows; has_dwell = dwell_s is present if absent."""
    columns = []
    for name in arrow_schema.names:
        values = batch.column(name)
        if name == "has_dwell" and values.null_count == batch.num_rows:
            values = pc.cast(pc.is_valid(batch.column("dwell_s")), pa.int64())
        columns.append(values)
    return pa.RecordBatch.from_arrays(columns, schema=arrow_schema)


def example_counts(batch: pa.RecordBatch) -> dict[str, int]:
    """Every row is an impression; clicked / purchased where the data has those labels."""
    counts = {"impressions": batch.num_rows}
    for label, key in (("click", "clicked_impressions"), ("purchase", "purchased_impressions")):
        if label in batch.schema.names:
            positive = pc.fill_null(pc.greater(batch.column(label), 0), False)
            counts[key] = pc.sum(pc.cast(positive, pa.int64())).as_py() or 0
    return counts


def catalogue_schema(examples: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    return pa.schema([examples.field("item_id"), *(examples.field(c) for c in columns)])


def _first_rows(element, columns: Sequence[str]):
    rows = keyed.concat(element[1], typed_schema())
    first = keyed.first_per_key(rows, ["item_id"], (readers.FILE_COLUMN, readers.ROW_COLUMN))
    yield from keyed.to_batches(rows.filter(pa.array(first)).select(["item_id", *columns]))


@beam.ptransform_fn
def FirstRowPerItem(  # noqa: N802
    rows: beam.PCollection, columns: Sequence[str], buckets: int
) -> beam.PCollection:
    """Catalogue rows: the item columns of each item's first row (smallest _file, _row)."""
    return (
        rows
        | "ByItem" >> keyed.GroupBuckets(["item_id"], buckets)
        | "FirstRows" >> beam.FlatMap(_first_rows, list(columns))
    )
