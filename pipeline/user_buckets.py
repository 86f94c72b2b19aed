"""Validated events and users grouped by user bucket: their dedupe and the label join's
shuffle in one (SPEC §5, §11).

The events are deduped by event_id, but only their keys and provenance cross a shuffle for
that (`dedupe.FindDuplicates`). Then one CoGroupByKey on the user bucket brings every event
of a user, the user's rows of the users table and the event copies to drop into one worker,
which drops the copies and dedupes the users (all copies of a user share its bucket). Its
output feeds the validate step's files and, when preprocess runs in the same job, the label
join (`join_beam.LabelBuckets`): the events cross one shuffle where a dedupe shuffle, then
the join's, took two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import apache_beam as beam
import pyarrow as pa

from features import schema
from pipeline import beam_io, dedupe, join, keyed
from pipeline.arrow_coder import RecordBatch

TABLES = (schema.EVENTS, schema.USERS)
DROPPED = "dropped"
# Event columns the dedupe shuffle carries besides the key: the user routes a dropped copy
# to its bucket; the time range of the kept events is known before that bucket's stage runs.
EVENT_CARRY = (*join.BUCKET_KEY, "ts")


class UserBuckets(NamedTuple):
    grouped: beam.PCollection
    """(bucket, {"events": [batches], "users": [batches]}) of the deduplicated rows."""
    tables: dict[str, beam.PCollection]
    """The deduplicated rows (RecordBatches of `beam_io.typed_schema`) by table name."""
    duplicates: dict[str, beam.PCollection]
    """The records of the dropped copies by table name (`dedupe.duplicate_records`)."""
    counts: tuple[beam.PCollection, ...]
    event_keys: beam.PCollection
    """RecordBatches of the kept events' key, `EVENT_CARRY` and provenance columns; unlike
    `grouped`, ready before the stage that groups the rows (`dedupe.FindDuplicates`)."""


class _ResolveBucketFn(beam.DoFn):
    """Drops the events' copies and dedupes the users of one bucket."""

    def __init__(self, schemas: Mapping[str, pa.Schema]):
        self._schemas = dict(schemas)

    def process(self, element):
        bucket, grouped = element
        tables = keyed.group_tables(grouped, self._schemas)
        events = dedupe.drop_rows(tables[schema.EVENTS.name], tables[DROPPED])
        counts = {schema.EVENTS.name: dedupe.accepted_counts(events, schema.EVENTS)}
        yield beam.pvalue.TaggedOutput("counts", counts)
        kept = {schema.EVENTS.name: list(keyed.to_batches(events))}
        if schema.USERS.name in tables:
            users, counts, records = dedupe.dedupe_table(tables[schema.USERS.name], schema.USERS)
            yield beam.pvalue.TaggedOutput("counts", counts)
            yield from (beam.pvalue.TaggedOutput("duplicates", r) for r in records)
            kept[schema.USERS.name] = list(keyed.to_batches(users))
        for name, batches in kept.items():
            yield from (beam.pvalue.TaggedOutput(name, b) for b in batches)
        yield bucket, kept


@beam.ptransform_fn
def GroupByUser(  # noqa: N802 (Beam transform names are CamelCase)
    accepted: Mapping[str, beam.PCollection], buckets: int
) -> UserBuckets:
    """Dedupes the accepted rows of "events" (and "users") and groups them by user bucket."""
    if schema.EVENTS.name not in accepted or set(accepted) - {t.name for t in TABLES}:
        raise ValueError(
            f"GroupByUser takes the tables {[t.name for t in TABLES]}, events required; got "
            f"{sorted(accepted)}: dedupe other tables with dedupe.DropDuplicates"
        )
    copies = accepted[schema.EVENTS.name] | "FindDuplicates" >> dedupe.FindDuplicates(
        schema.EVENTS, EVENT_CARRY, buckets
    )
    schemas = {name: beam_io.typed_schema(schema.TABLES[name]) for name in accepted}
    schemas[DROPPED] = dedupe.keys_schema(schema.EVENTS, EVENT_CARRY)
    resolved = (
        {**accepted, DROPPED: copies.dropped}
        | "ByUser" >> keyed.CoGroupBatches(join.BUCKET_KEY, buckets)
        | "Resolve"
        >> beam.ParDo(_ResolveBucketFn(schemas))
        .with_output_types(tuple[int, dict[str, list[RecordBatch]]])
        .with_outputs(*accepted, "duplicates", "counts", main="grouped")
    )
    duplicates = {schema.EVENTS.name: copies.duplicates}
    if schema.USERS.name in accepted:
        duplicates[schema.USERS.name] = resolved.duplicates
    return UserBuckets(
        grouped=resolved.grouped,
        tables={name: resolved[name] for name in accepted},
        duplicates=duplicates,
        counts=(copies.counts, resolved.counts),
        event_keys=copies.kept,
    )
