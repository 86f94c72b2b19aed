"""Validated events and users grouped by user bucket: the events' dedupe and the label
join's shuffle in one (SPEC §5, §11).

The events are deduped by event_id, but only their keys and provenance cross a shuffle for
that (`dedupe.FindDuplicates`). Then the events are grouped by user bucket, and each bucket
drops its copies and takes its users rows (deduped by `dedupe.DropDuplicates` on their own)
from a multimap side input that the runner serves one bucket at a time. The groups feed the
validate step's files and, when preprocess runs in the same job, the label join
(`join_beam.LabelBuckets`): the events cross one shuffle where a dedupe shuffle, then the
join's, took two. The users and the copies come as a side input rather than through a
CoGroupByKey because its Flatten would make the FnApiRunner write every event once more (it
materialises every Flatten of several inputs); they are a small part of the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import apache_beam as beam

from mtlrec.features import schema
from mtlrec.pipeline import beam_io, dedupe, join, keyed
from mtlrec.pipeline.arrow_coder import RecordBatch

TABLES = (schema.EVENTS, schema.USERS)
DROPPED = "dropped"
# Event columns the dedupe shuffle carries besides the key: the user routes a dropped copy
# to its bucket; the time range of the kept events is known before that bucket's stage runs.
EVENT_CARRY = (*join.BUCKET_KEY, "ts")


class UserBuckets(NamedTuple):
    grouped: beam.PCollection
    """(bucket, {"events": [batches], "users": [batches]}) of the deduplicated rows, for the
    buckets that have events."""
    tables: dict[str, beam.PCollection]
    """The deduplicated rows (RecordBatches of `beam_io.typed_schema`) by table name."""
    duplicates: dict[str, beam.PCollection]
    """The records of the dropped copies by table name (`dedupe.duplicate_records`)."""
    counts: tuple[beam.PCollection, ...]
    event_keys: beam.PCollection
    """RecordBatches of the kept events' key, `EVENT_CARRY` and provenance columns; unlike
    `grouped`, ready before the stage that groups the rows (`dedupe.FindDuplicates`)."""


class _ResolveBucketFn(beam.DoFn):
    """Drops the event copies of one bucket and adds the bucket's users rows."""

    def __init__(self):
        self._schemas = {
            schema.EVENTS.name: beam_io.typed_schema(schema.EVENTS),
            DROPPED: dedupe.keys_schema(schema.EVENTS, EVENT_CARRY),
        }

    def process(self, element, side):
        bucket, batches = element
        from_side = keyed.unpack_tagged(side[bucket], (DROPPED, schema.USERS.name))
        tables = keyed.group_tables(
            {schema.EVENTS.name: batches, DROPPED: from_side[DROPPED]}, self._schemas
        )
        events = dedupe.drop_rows(tables[schema.EVENTS.name], tables[DROPPED])
        counts = {schema.EVENTS.name: dedupe.accepted_counts(events, schema.EVENTS)}
        yield beam.pvalue.TaggedOutput("counts", counts)
        kept = list(keyed.to_batches(events))
        yield from (beam.pvalue.TaggedOutput(schema.EVENTS.name, b) for b in kept)
        yield bucket, {schema.EVENTS.name: kept, schema.USERS.name: from_side[schema.USERS.name]}


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
    events = accepted[schema.EVENTS.name]
    copies = events | "FindDuplicates" >> dedupe.FindDuplicates(schema.EVENTS, EVENT_CARRY, buckets)
    side = {DROPPED: copies.dropped}
    tables, duplicates = {}, {schema.EVENTS.name: copies.duplicates}
    counts = [copies.counts]
    if schema.USERS.name in accepted:
        users = accepted[schema.USERS.name] | "DedupeUsers" >> dedupe.DropDuplicates(
            schema.USERS, buckets
        )
        side[schema.USERS.name] = tables[schema.USERS.name] = users.kept
        duplicates[schema.USERS.name] = users.duplicates
        counts.append(users.counts)
    by_bucket = side | "Side" >> keyed.TagBuckets(join.BUCKET_KEY, buckets)
    resolved = (
        events
        | "ByUser" >> keyed.GroupBuckets(join.BUCKET_KEY, buckets)
        | "Resolve"
        >> beam.ParDo(_ResolveBucketFn(), beam.pvalue.AsMultiMap(by_bucket))
        .with_output_types(tuple[int, dict[str, list[RecordBatch]]])
        .with_outputs(schema.EVENTS.name, "counts", main="grouped")
    )
    tables[schema.EVENTS.name] = resolved[schema.EVENTS.name]
    counts.append(resolved.counts)
    return UserBuckets(
        grouped=resolved.grouped,
        tables=tables,
        duplicates=duplicates,
        counts=tuple(counts),
        event_keys=copies.kept,
    )
