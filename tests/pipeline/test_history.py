"""The user-history column: exact histories of hand-written rows, strictly before each
example's ts (ties excluded), from any split, never the example's own or a later item."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.features import schema
from mtlrec.pipeline import beam_io, interactions
from mtlrec.pipeline.history import AddHistory, interactions_of, recent_items
from mtlrec.pipeline.join_beam import JoinLabels

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
ROWS_SCHEMA = interactions.examples_schema(["user_id", "item_id", "ts", "rating"])

# (user, item, ts): u1 rates i1, then i2 and i3 at the same ts, i4, i5; u2 rates i9 once.
RATINGS = [
    ("u1", "i1", 10),
    ("u1", "i3", 20),
    ("u1", "i2", 20),
    ("u1", "i4", 30),
    ("u1", "i5", 40),
    ("u2", "i9", 15),
]
# Length 2, most recent first. At ts 20 neither tied rating sees the other; at 30 the tie is
# cut by item id (i3 after i2); u2's history never holds u1's items.
EXPECTED = [
    ("u1", "i1", ""),
    ("u1", "i3", "i1"),
    ("u1", "i2", "i1"),
    ("u1", "i4", "i3|i2"),
    ("u1", "i5", "i4|i3"),
    ("u2", "i9", ""),
]


def _table(rows, **extra) -> pa.Table:
    users, items, ts = zip(*rows, strict=True)
    columns = {"user_id": users, "item_id": items, "ts": ts, **extra}
    return pa.table({k: list(v) for k, v in columns.items()})


def test_recent_items_are_strictly_earlier_most_recent_first():
    table = _table(RATINGS)
    assert recent_items(table, table, 2).to_pylist() == [h for *_, h in EXPECTED]
    assert recent_items(table, table, 10).to_pylist()[4] == "i4|i3|i2|i1"


def test_no_example_sees_its_own_or_a_later_item():
    table = _table(RATINGS)
    for (user, item, ts), history in zip(
        RATINGS, recent_items(table, table, 10).to_pylist(), strict=True
    ):
        seen = {(u, i) for u, i, t in RATINGS if u == user and t < ts}
        assert {(user, i) for i in history.split("|") if i} == seen, item


def test_a_later_split_sees_earlier_rows_of_any_split():
    # A test example at ts 35 sees the training rows before it, not the one at 40.
    test = _table([("u1", "i7", 35), ("u3", "i1", 35)])
    assert recent_items(test, _table(RATINGS), 3).to_pylist() == ["i4|i3|i2", ""]


def test_a_click_column_keeps_only_the_clicked_rows():
    rows = _table([("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 3)], click=[1, 0, None])
    assert recent_items(rows, interactions_of(rows), 5).to_pylist() == ["", "i1", "i1"]


def test_an_item_id_with_the_separator_is_a_clear_error():
    rows = _table([("u1", "a|b", 1)])
    with pytest.raises(ValueError, match=r"item_id 'a\|b' \(user 'u1', ts 1\)"):
        recent_items(rows, rows, 5)


def _history_rows(batch: pa.RecordBatch) -> list[tuple]:
    return [(r["user_id"], r["item_id"], r["history"]) for r in batch.to_pylist()]


def test_add_history_groups_the_users_rows_across_batches():
    ratings = [(*r, 4.0) for r in RATINGS]
    batches = [
        pa.RecordBatch.from_pylist(
            [dict(zip(ROWS_SCHEMA.names, r, strict=True)) for r in part], schema=ROWS_SCHEMA
        )
        for part in (ratings[:3], ratings[3:])
    ]
    with TestPipeline(argv=IN_PROCESS) as p:
        out = (
            p
            | beam.Create(batches, reshuffle=False)
            | AddHistory(ROWS_SCHEMA, length=2, buckets=3)
            | beam.FlatMap(_history_rows)
        )
        assert_that(out, equal_to(EXPECTED))


def _event(i: int, event_type: str, user: str, item: str, ts: int) -> dict:
    return {
        "event_id": f"e{i}",
        "ts": ts,
        "user_id": user,
        "item_id": item,
        "event_type": event_type,
        "request_id": f"r{ts}",
        "position": 0 if event_type == "impression" else None,
        "dwell_s": None,
        "device": "web",
        "revenue": None,
        "_file": "events.parquet",
        "_row": i,
    }


def test_the_label_join_adds_the_clicks_before_each_impression():
    # u1 clicks i1 (shown at 100, clicked at 105) and i2 (an orphan click at 150); the
    # impression of i3 at 105 ties the first click and does not see it; i1's own click comes
    # after its impression; impressions never count, clicks only.
    events = [
        ("impression", "u1", "i1", 100),
        ("click", "u1", "i1", 105),
        ("impression", "u1", "i3", 105),
        ("click", "u1", "i2", 150),
        ("impression", "u1", "i4", 200),
        ("impression", "u2", "i1", 300),
    ]
    batch = pa.RecordBatch.from_pylist(
        [_event(i, *e) for i, e in enumerate(events)], schema=beam_io.typed_schema(schema.EVENTS)
    )
    with TestPipeline(argv=IN_PROCESS) as p:
        joined = (
            p
            | beam.Create([batch], reshuffle=False)
            | JoinLabels(60_000, 3_600_000, buckets=3, history_length=5)
        )
        out = joined["examples"] | beam.FlatMap(_history_rows)
        assert_that(
            out,
            equal_to([("u1", "i1", ""), ("u1", "i3", ""), ("u1", "i4", "i2|i1"), ("u2", "i1", "")]),
        )
