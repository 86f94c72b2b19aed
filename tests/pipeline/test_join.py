"""The label join (SPEC §5) in a Beam TestPipeline: exact examples and counts."""

from __future__ import annotations

import math

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.features import schema
from mtlrec.pipeline import beam_io
from mtlrec.pipeline.join_beam import JoinLabels

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
T0 = 1_704_067_200_000
CLICK_WINDOW = 30 * MIN
ATTRIBUTION_WINDOW = 24 * HOUR


def _events(rows: list[tuple]) -> pa.RecordBatch:
    """rows: (event_type, user, item, request, ts, dwell)."""
    records = [
        {
            "event_id": f"e{i}",
            "ts": ts,
            "user_id": user,
            "item_id": item,
            "event_type": event_type,
            "request_id": request,
            "position": i if event_type == "impression" else None,
            "dwell_s": dwell,
            "device": "web",
            "revenue": None,
            "_file": "events.parquet",
            "_row": i,
        }
        for i, (event_type, user, item, request, ts, dwell) in enumerate(rows)
    ]
    return pa.RecordBatch.from_pylist(records, schema=beam_io.typed_schema(schema.EVENTS))


T1 = T0 + HOUR
EVENTS = [
    # r1/i1: two clicks in the window (dwell max 8); a second impression copy of the key.
    ("impression", "u1", "i1", "r1", T0, None),
    ("impression", "u1", "i1", "r1", T0 + 2 * S, None),
    ("click", "u1", "i1", "r1", T0 + 10 * S, 5.0),
    ("click", "u1", "i1", "r1", T0 + 20 * S, 8.0),
    # r1/i2: the click comes 1 ms after the window: no click, an orphan click.
    ("impression", "u1", "i2", "r1", T0, None),
    ("click", "u1", "i2", "r1", T0 + CLICK_WINDOW + 1, 2.0),
    # r1/i3: a click before its impression is an orphan too.
    ("impression", "u1", "i3", "r1", T0, None),
    ("click", "u1", "i3", "r1", T0 - 1, None),
    # r2/i1: a click at the window's edge, without dwell: click, dwell masked.
    ("impression", "u1", "i1", "r2", T1, None),
    ("click", "u1", "i1", "r2", T1 + CLICK_WINDOW, None),
    # u1 buys i1 after both joined clicks: the last click (r2) wins.
    ("purchase", "u1", "i1", None, T1 + 2 * HOUR, None),
    # u2 buys i4 before clicking it: orphan purchase.
    ("impression", "u2", "i4", "r3", T0, None),
    ("click", "u2", "i4", "r3", T0 + 5 * S, None),
    ("purchase", "u2", "i4", None, T0 + 4 * S, None),
    # u3 buys i5 1 ms after the attribution window: orphan purchase.
    ("impression", "u3", "i5", "r4", T0, None),
    ("click", "u3", "i5", "r4", T0 + 5 * S, 1.0),
    ("purchase", "u3", "i5", None, T0 + 5 * S + ATTRIBUTION_WINDOW + 1, None),
    # u3 buys i1, which only u1 clicked: orphan purchase (same user required).
    ("purchase", "u3", "i1", None, T1 + 2 * HOUR, None),
    # A click without any impression: orphan click.
    ("click", "u4", "i9", "r9", T0, 3.0),
    # u3 buys i5 again, at the edge of the window: attributed to r4.
    ("purchase", "u3", "i5", None, T0 + 5 * S + ATTRIBUTION_WINDOW, None),
]

# (request, item, user, ts, position, click, purchase, dwell_s, has_dwell)
EXPECTED = [
    ("r1", "i1", "u1", T0, 0, 1, 0, 8.0, 1),
    ("r1", "i2", "u1", T0, 4, 0, 0, None, 0),
    ("r1", "i3", "u1", T0, 6, 0, 0, None, 0),
    ("r2", "i1", "u1", T1, 8, 1, 1, None, 0),
    ("r3", "i4", "u2", T0, 11, 1, 0, None, 0),
    ("r4", "i5", "u3", T0, 14, 1, 1, 1.0, 1),
]


def _rows(batch: pa.RecordBatch):
    for r in batch.to_pylist():
        dwell = None if r["dwell_s"] is None or math.isnan(r["dwell_s"]) else r["dwell_s"]
        yield (
            r["request_id"],
            r["item_id"],
            r["user_id"],
            r["ts"],
            r["position"],
            r["click"],
            r["purchase"],
            dwell,
            r["has_dwell"],
        )


def test_join_labels_and_counts():
    with TestPipeline(argv=IN_PROCESS) as p:
        joined = (
            p
            | beam.Create([_events(EVENTS).slice(0, 9), _events(EVENTS).slice(9)])
            | JoinLabels(CLICK_WINDOW, ATTRIBUTION_WINDOW, buckets=3)
        )
        assert_that(joined["examples"] | beam.FlatMap(_rows), equal_to(EXPECTED), label="Rows")
        counts = {
            "impressions": 7,
            "impressions_deduplicated": 1,
            "clicks_joined": 5,
            "orphan_clicks": 3,
            "clicked_impressions": 4,
            "purchases_attributed": 2,
            "orphan_purchases": 3,
            "purchased_impressions": 2,
        }
        total = joined["counts"] | beam.CombineGlobally(beam_io.SumCounts())
        assert_that(total, equal_to([counts]), label="Counts")


def _users(rows: list[tuple]) -> pa.RecordBatch:
    """rows: (user, country, age_bucket)."""
    records = [
        {
            "user_id": u,
            "country": c,
            "age_bucket": a,
            "signup_ts": T0,
            "_file": "u.jsonl",
            "_row": i,
        }
        for i, (u, c, a) in enumerate(rows)
    ]
    return pa.RecordBatch.from_pylist(records, schema=beam_io.typed_schema(schema.USERS))


def test_join_labels_adds_the_users_columns_in_the_same_grouping():
    users = [("u1", "DE", "25-34"), ("u3", "JP", None), ("u7", "FR", "18-24")]
    with TestPipeline(argv=IN_PROCESS) as p:
        joined = (
            p
            | "Events" >> beam.Create([_events(EVENTS)])
            | JoinLabels(
                CLICK_WINDOW,
                ATTRIBUTION_WINDOW,
                buckets=3,
                users=p | "Users" >> beam.Create([_users(users)]),
            )
        )
        rows = joined["examples"] | beam.FlatMap(
            lambda b: [
                (r["request_id"], r["item_id"], r["country"], r["age_bucket"])
                for r in b.to_pylist()
            ]
        )
        expected = [
            ("r1", "i1", "DE", "25-34"),
            ("r1", "i2", "DE", "25-34"),
            ("r1", "i3", "DE", "25-34"),
            ("r2", "i1", "DE", "25-34"),
            ("r3", "i4", None, None),
            ("r4", "i5", "JP", None),
        ]
        assert_that(rows, equal_to(expected))


def test_orphan_clicks_become_retrieval_only_examples_when_asked():
    with TestPipeline(argv=IN_PROCESS) as p:
        joined = (
            p
            | beam.Create([_events(EVENTS)])
            | JoinLabels(
                CLICK_WINDOW, ATTRIBUTION_WINDOW, buckets=3, orphan_clicks_to_retrieval=True
            )
        )
        rows = joined["examples"] | beam.FlatMap(
            lambda b: [
                (r["request_id"], r["item_id"], r["ts"], r["click"], r["purchase"], r["impression"])
                for r in b.to_pylist()
            ]
        )
        shown = [(r, i, ts, click, buy, 1) for r, i, _, ts, _, click, buy, _, _ in EXPECTED]
        orphans = [
            ("r1", "i2", T0 + CLICK_WINDOW + 1, 1, 0, 0),
            ("r1", "i3", T0 - 1, 1, 0, 0),
            ("r9", "i9", T0, 1, 0, 0),
        ]
        assert_that(rows, equal_to(shown + orphans), label="Rows")
        total = joined["counts"] | beam.CombineGlobally(beam_io.SumCounts())
        assert_that(
            total | beam.Map(lambda c: (c["orphan_clicks"], c["retrieval_only_examples"])),
            equal_to([(3, 3)]),
            label="Counts",
        )
