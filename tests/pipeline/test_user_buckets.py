"""Dedupe of events by their keys alone, and the events and users grouped by user bucket."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.features import schema
from mtlrec.pipeline import beam_io, keyed
from mtlrec.pipeline.dedupe import FindDuplicates, drop_rows
from mtlrec.pipeline.user_buckets import GroupByUser

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
EVENTS = beam_io.typed_schema(schema.EVENTS)
USERS = beam_io.typed_schema(schema.USERS)


def _rows(
    arrow_schema: pa.Schema, names: tuple[str, ...], rows: list[tuple], **same
) -> pa.RecordBatch:
    """A batch of `arrow_schema` from `rows` of the `names` columns; `same` gives a value
    for every row; other columns are null."""
    columns = dict(zip(names, zip(*rows, strict=True), strict=True))
    columns |= {name: [value] * len(rows) for name, value in same.items()}
    return pa.RecordBatch.from_pydict(
        {f.name: columns.get(f.name, [None] * len(rows)) for f in arrow_schema},
        schema=arrow_schema,
    )


def _events(rows: list[tuple[str, str, int, str, int]]) -> pa.RecordBatch:
    """(event_id, user_id, ts, _file, _row) impressions of item i1."""
    names = ("event_id", "user_id", "ts", "_file", "_row")
    impression = {"item_id": "i1", "event_type": "impression", "request_id": "r1", "position": 0}
    return _rows(EVENTS, names, rows, **impression)


def _users(rows: list[tuple[str, str, str, int]]) -> pa.RecordBatch:
    """(user_id, country, _file, _row)."""
    return _rows(USERS, ("user_id", "country", "_file", "_row"), rows)


# e1 has three copies, one of them under another user (a copy is a copy by event_id alone).
EVENT_ROWS = [
    ("e1", "u1", 10, "b.csv", 0),
    ("e1", "u2", 99, "a.csv", 7),
    ("e2", "u2", 20, "a.csv", 1),
    ("e1", "u1", 10, "a.csv", 3),
    ("e3", "u3", 30, "b.csv", 1),
]
# u4 has no events: a validated users row all the same.
USER_ROWS = [
    ("u1", "DE", "b.jsonl", 0),
    ("u1", "FR", "a.jsonl", 5),
    ("u2", "JP", "a.jsonl", 0),
    ("u4", "BR", "a.jsonl", 1),
]


def _fail(found):
    raise AssertionError(f"a group holds rows of another bucket: {found}")


def _pairs(batch: pa.RecordBatch, *columns: str) -> list[tuple]:
    return list(zip(*(batch.column(c).to_pylist() for c in columns), strict=True))


def test_find_duplicates_shuffles_keys_and_returns_the_copies_to_drop():
    with TestPipeline(argv=IN_PROCESS) as p:
        copies = (
            p
            | beam.Create([_events(EVENT_ROWS[:2]), _events(EVENT_ROWS[2:])], reshuffle=False)
            | FindDuplicates(schema.EVENTS, ("user_id", "ts"), buckets=4)
        )
        dropped = copies.dropped | "Dropped" >> beam.FlatMap(
            _pairs, "event_id", "user_id", "_file", "_row"
        )
        assert_that(
            dropped,
            equal_to([("e1", "u1", "b.csv", 0), ("e1", "u2", "a.csv", 7)]),
            label="Dropped",
        )
        kept = copies.kept | "Kept" >> beam.FlatMap(_pairs, "event_id", "ts")
        assert_that(kept, equal_to([("e1", 10), ("e2", 20), ("e3", 30)]), label="Kept")
        records = [
            {"event_id": "e1", "_file": f, "_row": r, "kept_file": "a.csv", "kept_row": 3}
            for f, r in (("b.csv", 0), ("a.csv", 7))
        ]
        assert_that(copies.duplicates, equal_to(records), label="Records")
        total = copies.counts | beam.Map(lambda c: c["events"]["duplicates"])
        assert_that(total | beam.CombineGlobally(sum), equal_to([2]), label="Counts")


def test_drop_rows_matches_file_and_row_together():
    rows = pa.Table.from_batches([_events(EVENT_ROWS)])
    # Row 0 of a.csv is no row here, and row 3 of b.csv neither: only exact pairs go.
    dropped = pa.table({"_file": ["b.csv", "a.csv", "b.csv"], "_row": [0, 0, 3]})
    kept = drop_rows(rows, dropped)
    assert _pairs(kept, "_file", "_row") == [("a.csv", 7), ("a.csv", 1), ("a.csv", 3), ("b.csv", 1)]
    assert drop_rows(rows, dropped.slice(0, 0)) is rows


@pytest.mark.parametrize("buckets", [1, 3])
def test_group_by_user_drops_copies_across_buckets_and_dedupes_users(buckets):
    with TestPipeline(argv=IN_PROCESS) as p:
        accepted = {
            "events": p | "Events" >> beam.Create([_events(EVENT_ROWS)], reshuffle=False),
            "users": p | "Users" >> beam.Create([_users(USER_ROWS)], reshuffle=False),
        }
        grouped = accepted | GroupByUser(buckets)
        events = grouped.tables["events"] | "Events rows" >> beam.FlatMap(
            _pairs, "event_id", "_file", "_row"
        )
        expected_events = [("e1", "a.csv", 3), ("e2", "a.csv", 1), ("e3", "b.csv", 1)]
        assert_that(events, equal_to(expected_events), label="Events")
        users = grouped.tables["users"] | "Users rows" >> beam.FlatMap(_pairs, "user_id", "country")
        assert_that(users, equal_to([("u1", "FR"), ("u2", "JP"), ("u4", "BR")]), label="Users")
        user_copies = [
            {"user_id": "u1", "_file": "b.jsonl", "_row": 0, "kept_file": "a.jsonl", "kept_row": 5}
        ]
        assert_that(grouped.duplicates["users"], equal_to(user_copies), label="User copies")
        # Each bucket holds its users' kept events and rows; every bucket here has events.
        per_user = grouped.grouped | beam.FlatMap(
            lambda element: [
                (name, *pair)
                for name, batches in element[1].items()
                for batch in batches
                for pair in _pairs(batch, "user_id", "_row")
            ]
        )
        assert_that(
            per_user,
            equal_to(
                [
                    ("events", "u1", 3),
                    ("events", "u2", 1),
                    ("events", "u3", 1),
                    ("users", "u1", 5),
                    ("users", "u2", 0),
                    ("users", "u4", 1),
                ]
            ),
            label="Grouped",
        )
        in_own_bucket = grouped.grouped | "Own bucket" >> beam.FlatMap(
            lambda element: [
                bool((keyed.bucket_ids(batch, ["user_id"], buckets) == element[0]).all())
                for batches in element[1].values()
                for batch in batches
            ]
        )
        assert_that(in_own_bucket, lambda found: all(found) or _fail(found), label="Own bucket")
        times = grouped.event_keys | beam.FlatMap(lambda b: b.column("ts").to_pylist())
        assert_that(times, equal_to([10, 20, 30]), label="Times")
        counts = grouped.counts | beam.Flatten() | beam.CombineGlobally(beam_io.SumCounts())
        expected_counts = {
            "events": {"duplicates": 2, "accepted": {"impression": 3}},
            "users": {
                "duplicates": 1,
                "accepted": {"rows": 3},
                "non_null": {"user_id": 3, "country": 3, "age_bucket": 0, "signup_ts": 0},
            },
        }
        assert_that(counts, equal_to([expected_counts]), label="Counts")


def test_group_by_user_needs_the_events():
    with pytest.raises(ValueError, match="events required"), TestPipeline(argv=IN_PROCESS) as p:
        _ = {"users": p | beam.Create([_users(USER_ROWS)])} | GroupByUser(4)
