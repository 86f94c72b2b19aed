"""The user-history column (`features.history_length`): the items a user interacted with
before each of its examples (SPEC §6).

A history holds what a server knows when the request arrives: the user's interactions with
a ts strictly before the example's, from any split (a test example may see training rows,
never a row at or after its own ts, so no example sees its own item or a later one). The
last `length` of them, most recent first, are written as one '|'-joined string, the form of
the multivalent raw columns (`genres`), so the transform, the TFRecords and the serving
signatures carry it like any other string column; "" is an empty history.

An interaction is a click in the click log (`join.of_type(events, "click")`, orphan clicks
included: the server saw them) and a row of a pre-joined interactions table: a rating is
an interaction, and a table with a click column counts its clicked rows only.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features.declarations import HISTORY, MULTIVALENT_SEPARATOR
from mtlrec.pipeline import join, keyed
from mtlrec.pipeline.arrow_coder import RecordBatch


def interactions_of(rows: pa.Table) -> pa.Table:
    """The rows of a pre-joined interactions table that count as interactions."""
    if "click" not in rows.column_names:
        return rows
    return rows.filter(pc.fill_null(pc.equal(rows.column("click"), 1), False))


def recent_items(examples: pa.Table, interactions: pa.Table, length: int) -> pa.Array:
    """Per example row: the '|'-joined item ids of the last `length` interactions of its
    user strictly before its ts, most recent first ("" when there are none).

    Interactions at the same ts are ordered by item id, so the cut at `length` is
    deterministic.

    Raises:
      ValueError: an interaction's item id contains the separator.
    """
    by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user, ts, item in zip(
        interactions.column("user_id").to_pylist(),
        interactions.column("ts").to_pylist(),
        interactions.column("item_id").to_pylist(),
        strict=True,
    ):
        if MULTIVALENT_SEPARATOR in item:
            raise ValueError(
                f"features.history_length: item_id {item!r} (user {user!r}, ts {ts}) contains "
                f"{MULTIVALENT_SEPARATOR!r}, the history separator; rename the item or set "
                "features.history_length: 0"
            )
        by_user[user].append((ts, item))
    times: dict[str, list[int]] = {}
    items: dict[str, list[str]] = {}
    for user, rows in by_user.items():
        rows.sort()
        times[user] = [ts for ts, _ in rows]
        items[user] = [item for _, item in rows]
    histories = []
    for user, ts in zip(
        examples.column("user_id").to_pylist(), examples.column("ts").to_pylist(), strict=True
    ):
        if user not in times:
            histories.append("")
            continue
        end = bisect.bisect_left(times[user], ts)  # strictly before: ties are excluded
        histories.append(
            MULTIVALENT_SEPARATOR.join(reversed(items[user][max(0, end - length) : end]))
        )
    return pa.array(histories, pa.string())


def with_history(examples: pa.Table, interactions: pa.Table, length: int) -> pa.Table:
    """`examples` with the `history` column appended (`recent_items`)."""
    return examples.append_column(HISTORY, recent_items(examples, interactions, length))


def history_schema(examples_schema: pa.Schema) -> pa.Schema:
    """Schema of the examples once `with_history` appended the column."""
    return examples_schema.append(pa.field(HISTORY, pa.string()))


class _HistoryFn(beam.DoFn):
    def __init__(self, examples_schema: pa.Schema, length: int):
        self._schema = examples_schema
        self._length = length

    def process(self, element):
        rows = keyed.concat(element[1], self._schema)
        yield from keyed.to_batches(with_history(rows, interactions_of(rows), self._length))


@beam.ptransform_fn
def AddHistory(  # noqa: N802 (Beam transform names are CamelCase)
    examples: beam.PCollection, examples_schema: pa.Schema, length: int, buckets: int
) -> beam.PCollection:
    """Pre-joined examples with their `history` column: one shuffle by user bucket brings a
    user's rows together. (Events get theirs in the label join, already grouped by user.)"""
    return (
        examples
        | "ByUser" >> keyed.GroupBuckets(join.BUCKET_KEY, buckets)
        | "History"
        >> beam.ParDo(_HistoryFn(examples_schema, length)).with_output_types(RecordBatch)
    )
