"""Beam transforms of the label join (SPEC §5): keyed CoGroupByKey stages over Arrow batches.

The per-bucket logic is `mtlrec.pipeline.join`; these transforms only route the batches, so every
key's rows meet in one worker and no step materialises the whole data set.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import schema
from mtlrec.pipeline import beam_io, history, join, keyed
from mtlrec.pipeline.arrow_coder import RecordBatch

EVENTS_SCHEMA = beam_io.typed_schema(schema.EVENTS)


class _LabelBucketFn(beam.DoFn):
    """Labels the events of one user bucket and joins the bucket's users rows."""

    def __init__(
        self,
        click_window_ms: int,
        attribution_window_ms: int,
        with_users: bool,
        orphan_clicks_to_retrieval: bool,
        history_length: int,
    ):
        self._history_length = history_length
        self._click_window_ms = click_window_ms
        self._attribution_window_ms = attribution_window_ms
        self._with_users = with_users
        self._orphan_clicks_to_retrieval = orphan_clicks_to_retrieval
        self._schemas = {"events": EVENTS_SCHEMA}
        if with_users:
            self._schemas["users"] = beam_io.typed_schema(schema.USERS)

    def process(self, element):
        tables = keyed.group_tables(element[1], self._schemas)
        if tables["events"].num_rows == 0:
            return
        examples, counts = join.label_bucket(
            tables["events"],
            self._click_window_ms,
            self._attribution_window_ms,
            self._orphan_clicks_to_retrieval,
        )
        yield beam.pvalue.TaggedOutput("counts", counts)
        if self._with_users:
            examples = join.join_side(examples, tables["users"], schema.USERS)
        if self._history_length:
            clicks = join.of_type(tables["events"], "click")
            examples = history.with_history(examples, clicks, self._history_length)
        yield from keyed.to_batches(examples)


@beam.ptransform_fn
def LabelBuckets(  # noqa: N802
    grouped: beam.PCollection,
    click_window_ms: int,
    attribution_window_ms: int,
    with_users: bool = True,
    orphan_clicks_to_retrieval: bool = False,
    history_length: int = 0,
) -> dict[str, beam.PCollection]:
    """`JoinLabels` on events (and users rows) already grouped by user bucket:
    (bucket, {"events": [batches], "users": [batches]}) with one users row per user."""
    labelled = grouped | "Label" >> beam.ParDo(
        _LabelBucketFn(
            click_window_ms,
            attribution_window_ms,
            with_users,
            orphan_clicks_to_retrieval,
            history_length,
        )
    ).with_output_types(RecordBatch).with_outputs("counts", main="examples")
    return {"examples": labelled.examples, "counts": labelled.counts}


@beam.ptransform_fn
def JoinLabels(  # noqa: N802
    events: beam.PCollection,
    click_window_ms: int,
    attribution_window_ms: int,
    buckets: int,
    users: beam.PCollection | None = None,
    orphan_clicks_to_retrieval: bool = False,
    history_length: int = 0,
) -> dict[str, beam.PCollection]:
    """Labelled examples (one per impression key) and the join's count dicts.

    One CoGroupByKey on the user bucket brings every event of a user, and the user's row of
    `users` when given, into one worker: a single shuffle of the events for the whole join.
    The examples get the users table's columns (`with_side_columns`) when `users` is given,
    and include retrieval-only examples of orphan clicks with `orphan_clicks_to_retrieval`,
    and the `history` column of the user's clicks before each example with `history_length`
    (`mtlrec.pipeline.history`).
    """
    inputs = {"events": events} if users is None else {"events": events, "users": users}
    return (
        inputs
        | "ByUser" >> keyed.CoGroupBatches(join.BUCKET_KEY, buckets)
        | "Labels"
        >> LabelBuckets(
            click_window_ms,
            attribution_window_ms,
            users is not None,
            orphan_clicks_to_retrieval,
            history_length,
        )
    )


def _join_batch(
    batch: pa.RecordBatch, side: list[pa.RecordBatch], side_schema: pa.Schema, table: schema.Table
) -> pa.RecordBatch:
    rows = keyed.concat(side, side_schema)
    joined = join.join_side(pa.Table.from_batches([batch]), rows, table)
    return joined.combine_chunks().to_batches()[0]


@beam.ptransform_fn
def JoinSideTable(  # noqa: N802
    examples: beam.PCollection, side: beam.PCollection, table: schema.Table
) -> beam.PCollection:
    """Examples with the side table's columns (null where the key has no side row).

    A broadcast join: every worker gets the whole side table as a side input and joins its
    batches where they are, with no shuffle of the examples. Meant for the items table,
    which the product already holds whole (the catalogue, the retriever's index).
    """
    columns = [table.key, *join.side_columns(table)]
    typed = beam_io.typed_schema(table)
    side_schema = pa.schema([typed.field(c) for c in columns])
    rows = side | "Columns" >> beam.Map(lambda b: b.select(columns)).with_output_types(RecordBatch)
    joined = beam.Map(_join_batch, beam.pvalue.AsList(rows), side_schema, table)
    return examples | "Join" >> joined.with_output_types(RecordBatch)


def with_side_columns(examples_schema: pa.Schema, table: schema.Table) -> pa.Schema:
    """Schema of `JoinSideTable`'s output."""
    side = beam_io.typed_schema(table)
    return pa.schema([*examples_schema, *(side.field(c) for c in join.side_columns(table))])


def _item_ids(batch: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pc.unique(batch.column("item_id"))], names=["item_id"])


def _catalogue_rows(element, columns: list[str]):
    item_schema = beam_io.typed_schema(schema.ITEMS)
    ids_schema = pa.schema([("item_id", pa.string())])
    tables = keyed.group_tables(element[1], {"ids": ids_schema, "items": item_schema})
    yield from keyed.to_batches(join.catalogue(tables["ids"], tables["items"], columns))


@beam.ptransform_fn
def BuildCatalogue(  # noqa: N802
    events: beam.PCollection, items: beam.PCollection, columns: list[str], buckets: int
) -> beam.PCollection:
    """One row per item of the items table or the events, with the item `columns`."""
    return (
        {"ids": events | "ItemIds" >> beam.Map(_item_ids), "items": items}
        | "ByItem" >> keyed.CoGroupBatches(("item_id",), buckets)
        | "Rows" >> beam.FlatMap(_catalogue_rows, columns)
    )


def catalogue_schema(columns: list[str]) -> pa.Schema:
    item_schema = beam_io.typed_schema(schema.ITEMS)
    return pa.schema([item_schema.field("item_id"), *(item_schema.field(c) for c in columns)])
