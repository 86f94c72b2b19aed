"""Beam transforms of the label join (SPEC §5): keyed CoGroupByKey stages over Arrow batches.

The per-bucket logic is `pipeline.join`; these transforms only route the batches, so every
key's rows meet in one worker and no step materialises the whole data set.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from features import schema
from pipeline import beam_io, join, keyed

EVENTS_SCHEMA = beam_io.typed_schema(schema.EVENTS)


class _SplitEventTypesFn(beam.DoFn):
    """Routes each event type of a batch to the output named after it."""

    def process(self, batch: pa.RecordBatch):
        for event_type in schema.EVENT_TYPES:
            rows = batch.filter(pc.equal(batch.column("event_type"), event_type))
            if rows.num_rows:
                yield beam.pvalue.TaggedOutput(event_type, rows)


class _LabelClicksFn(beam.DoFn):
    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element):
        tables = keyed.group_tables(
            element[1], {"impression": EVENTS_SCHEMA, "click": EVENTS_SCHEMA}
        )
        examples, joined, counts = join.label_clicks(
            tables["impression"], tables["click"], self._window_ms
        )
        yield beam.pvalue.TaggedOutput("counts", counts)
        yield beam.pvalue.TaggedOutput("joined_clicks", joined)
        yield examples


class _AttributeFn(beam.DoFn):
    def __init__(self, window_ms: int):
        self._window_ms = window_ms

    def process(self, element):
        tables = keyed.group_tables(
            element[1], {"joined_clicks": join.JOINED_CLICK_SCHEMA, "purchase": EVENTS_SCHEMA}
        )
        marks, counts = join.attribute_purchases(
            tables["joined_clicks"], tables["purchase"], self._window_ms
        )
        yield beam.pvalue.TaggedOutput("counts", counts)
        yield marks


def _mark(element):
    tables = keyed.group_tables(
        element[1], {"examples": join.EXAMPLE_SCHEMA, "marks": join.MARK_SCHEMA}
    )
    examples, counts = join.mark_purchases(tables["examples"], tables["marks"])
    yield beam.pvalue.TaggedOutput("counts", counts)
    yield examples


@beam.ptransform_fn
def JoinLabels(  # noqa: N802
    events: beam.PCollection, click_window_ms: int, attribution_window_ms: int, buckets: int
) -> dict[str, beam.PCollection]:
    """Labelled examples (one per impression key) and the join's count dicts."""
    by_type = events | "ByEventType" >> beam.ParDo(_SplitEventTypesFn()).with_outputs(
        *schema.EVENT_TYPES
    )
    stage1 = (
        {"impression": by_type.impression, "click": by_type.click}
        | "ByImpressionKey" >> keyed.CoGroupBatches(join.IMPRESSION_KEY, buckets)
        | "LabelClicks"
        >> beam.ParDo(_LabelClicksFn(click_window_ms)).with_outputs(
            "counts", "joined_clicks", main="examples"
        )
    )
    stage2 = (
        {
            "joined_clicks": stage1.joined_clicks
            | "ClickBatches" >> beam.FlatMap(keyed.to_batches),
            "purchase": by_type.purchase,
        }
        | "ByUserItem" >> keyed.CoGroupBatches(join.PURCHASE_KEY, buckets)
        | "Attribute"
        >> beam.ParDo(_AttributeFn(attribution_window_ms)).with_outputs("counts", main="marks")
    )
    stage3 = (
        {
            "examples": stage1.examples | "ExampleBatches" >> beam.FlatMap(keyed.to_batches),
            "marks": stage2.marks | "MarkBatches" >> beam.FlatMap(keyed.to_batches),
        }
        | "MarkByImpressionKey" >> keyed.CoGroupBatches(join.IMPRESSION_KEY, buckets)
        | "MarkPurchases" >> beam.FlatMap(_mark).with_outputs("counts", main="examples")
    )
    counts = (stage1.counts, stage2.counts, stage3.counts) | "JoinCounts" >> beam.Flatten()
    examples = stage3.examples | "LabelledBatches" >> beam.FlatMap(keyed.to_batches)
    return {"examples": examples, "counts": counts}


class _JoinSideFn(beam.DoFn):
    def __init__(self, table: schema.Table, examples_schema: pa.Schema):
        self._table = table
        self._examples_schema = examples_schema

    def process(self, element):
        side_schema = beam_io.typed_schema(self._table)
        tables = keyed.group_tables(
            element[1], {"examples": self._examples_schema, "side": side_schema}
        )
        if tables["examples"].num_rows:
            yield join.join_side(tables["examples"], tables["side"], self._table)


@beam.ptransform_fn
def JoinSideTable(  # noqa: N802
    examples: beam.PCollection,
    side: beam.PCollection,
    table: schema.Table,
    examples_schema: pa.Schema,
    buckets: int,
) -> beam.PCollection:
    """Examples with the side table's columns (null where the key has no side row)."""
    return (
        {"examples": examples, "side": side}
        | "ByKey" >> keyed.CoGroupBatches((table.key,), buckets)
        | "Join" >> beam.ParDo(_JoinSideFn(table, examples_schema))
        | "Batches" >> beam.FlatMap(keyed.to_batches)
    )


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
