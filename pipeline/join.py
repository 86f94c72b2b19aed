"""The label join (SPEC §5) on the events of one user bucket (see `mtlrec.pipeline.keyed`).

Every key of the join starts with the user, so one bucket of users holds all it needs:
1. key (user_id, request_id, item_id): one example per impression key; a click joins when
   0 <= click_ts - impression_ts <= click window; click = 1 when any click joins; dwell_s =
   max dwell of the joined clicks, has_dwell = 1 when any of them has one.
2. key (user_id, item_id): a purchase is attributed to the same user's joined click on the
   item with 0 <= purchase_ts - click_ts <= attribution window, the last such click
   (largest click_ts) winning, and the winners' impressions get purchase = 1.
Side tables join on their key (items: item_id, users: user_id).

Everything is Arrow hash joins and group-bys, run in C++ on the string keys: pandas merges
made a Python object per key value and took most of the join's time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.features import readers, schema
from mtlrec.features.declarations import JOINED_COLUMNS
from mtlrec.pipeline import keyed

IMPRESSION_KEY = ("user_id", "request_id", "item_id")
BUCKET_KEY = ("user_id",)
PURCHASE_KEY = ("user_id", "item_id")
EXAMPLE_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.int64()),
        ("request_id", pa.string()),
        ("position", pa.int64()),
        ("device", pa.string()),
        ("click", pa.int64()),
        ("purchase", pa.int64()),
        ("dwell_s", pa.float64()),
        ("has_dwell", pa.int64()),
        ("impression", pa.int64()),
    ]
)
JOINED_CLICK_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.int64()),
        ("request_id", pa.string()),
    ]
)
MARK_SCHEMA = pa.schema([(c, pa.string()) for c in IMPRESSION_KEY])


# Which copy of an impression key is its example: the first in this order.
ORDER = (("ts", "ascending"), (readers.FILE_COLUMN, "ascending"), (readers.ROW_COLUMN, "ascending"))


def _in_window(pairs: pa.Table, later: str, earlier: str, window_ms: int) -> pa.Table:
    delay = pc.subtract(pairs.column(later), pairs.column(earlier))
    return pairs.filter(pc.and_(pc.greater_equal(delay, 0), pc.less_equal(delay, window_ms)))


def _with_row_number(table: pa.Table, name: str) -> pa.Table:
    return table.append_column(name, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def label_clicks(
    impressions: pa.Table, clicks: pa.Table, window_ms: int
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Step 1: (examples, joined clicks, counts) for the impressions and clicks of a bucket."""
    keys = list(IMPRESSION_KEY)
    shown_at = impressions.select([*keys, "ts"]).rename_columns([*keys, "ts_imp"])
    pairs = clicks.select([*keys, "event_id", "ts"]).join(shown_at, keys=keys)
    joined_ids = _in_window(pairs, "ts", "ts_imp", window_ms).column("event_id")
    joined = clicks.filter(pc.is_in(clicks.column("event_id"), value_set=joined_ids))
    per_key = joined.group_by(keys).aggregate([("dwell_s", "max"), ("dwell_s", "count")])
    # The first copy of each impression key: its smallest row number in ORDER.
    order = pc.sort_indices(impressions, sort_keys=list(ORDER))
    numbered = _with_row_number(impressions.select(keys).take(order), "_n")
    first = numbered.group_by(keys).aggregate([("_n", "min")])
    labels = first.join(per_key, keys=keys, join_type="left outer").sort_by("_n_min")
    shown = EXAMPLE_SCHEMA.names[:6]
    examples = impressions.select(shown).take(order.take(labels.column("_n_min")))
    n = examples.num_rows
    columns = {c: examples.column(c) for c in shown}
    columns |= {
        "click": pc.cast(labels.column("dwell_s_count").is_valid(), pa.int64()),
        "purchase": pa.array(np.zeros(n, np.int64)),
        "dwell_s": labels.column("dwell_s_max"),
        "has_dwell": pc.cast(
            pc.fill_null(pc.greater(labels.column("dwell_s_count"), 0), False), pa.int64()
        ),
        "impression": pa.array(np.ones(n, np.int64)),
    }
    examples = pa.table(columns, schema=EXAMPLE_SCHEMA)
    counts = {
        "impressions": impressions.num_rows,
        "impressions_deduplicated": impressions.num_rows - n,
        "clicks_joined": joined.num_rows,
        "orphan_clicks": clicks.num_rows - joined.num_rows,
        "clicked_impressions": pc.sum(examples.column("click")).as_py() or 0,
    }
    joined = joined.select(JOINED_CLICK_SCHEMA.names).cast(JOINED_CLICK_SCHEMA)
    return examples, joined, counts


def attribute_purchases(
    joined_clicks: pa.Table, purchases: pa.Table, window_ms: int
) -> tuple[pa.Table, dict[str, int]]:
    """Step 2: (impression keys to mark purchased, counts) for the purchases of a bucket."""
    click_columns = ["user_id", "item_id", "ts_click", "request_id"]
    cl = joined_clicks.select(["user_id", "item_id", "ts", "request_id"]).rename_columns(
        click_columns
    )
    pu = purchases.select(["event_id", "user_id", "item_id", "ts"])
    pairs = _in_window(pu.join(cl, keys=list(PURCHASE_KEY)), "ts", "ts_click", window_ms)
    # Last click wins; equal click times fall back to the smaller request_id (deterministic).
    pairs = pairs.sort_by(
        [("event_id", "ascending"), ("ts_click", "descending"), ("request_id", "ascending")]
    )
    winners = pairs.filter(keyed.key_starts(pairs.select(["event_id"])))
    marks = winners.select(list(IMPRESSION_KEY)).group_by(list(IMPRESSION_KEY)).aggregate([])
    counts = {
        "purchases_attributed": winners.num_rows,
        "orphan_purchases": purchases.num_rows - winners.num_rows,
    }
    return marks.select(MARK_SCHEMA.names).cast(MARK_SCHEMA), counts


def mark_purchases(examples: pa.Table, marks: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Step 2: purchase = 1 on the examples whose key some purchase was attributed to."""
    keys = list(IMPRESSION_KEY)
    distinct = marks.group_by(keys).aggregate([])
    flags = distinct.append_column("_marked", pa.array(np.ones(distinct.num_rows, np.int64)))
    numbered = _with_row_number(examples.select(keys), "_example")
    # One row per example (the marks are distinct), put back in the examples' order.
    flagged = numbered.join(flags, keys=keys, join_type="left outer").sort_by("_example")
    purchase = pc.fill_null(flagged.column("_marked"), 0)
    at = examples.schema.get_field_index("purchase")
    examples = examples.set_column(at, examples.schema.field(at), purchase)
    return examples, {"purchased_impressions": pc.sum(purchase).as_py() or 0}


def of_type(events: pa.Table, event_type: str) -> pa.Table:
    return events.filter(pc.equal(events.column("event_type"), event_type))


def retrieval_only_examples(clicks: pa.Table, joined_clicks: pa.Table) -> pa.Table:
    """Examples of the clicks that joined no impression: click = 1, impression = 0.

    They teach the retrieval task (which pairs a user clicks); the ranking tasks mask them
    out, having no impression to rank (`mtlrec.features.declarations.RANKING_MASK`).
    """
    joined_ids = joined_clicks.column("event_id")
    orphans = clicks.filter(pc.invert(pc.is_in(clicks.column("event_id"), value_set=joined_ids)))
    n = orphans.num_rows
    ones, zeros = pa.array(np.ones(n, np.int64)), pa.array(np.zeros(n, np.int64))
    columns = {c: orphans.column(c) for c in ("user_id", "item_id", "ts", "request_id", "device")}
    columns |= {
        "position": pa.nulls(n, pa.int64()),
        "click": ones,
        "purchase": zeros,
        "dwell_s": pa.nulls(n, pa.float64()),
        "has_dwell": zeros,
        "impression": zeros,
    }
    return pa.table({f.name: columns[f.name] for f in EXAMPLE_SCHEMA}, schema=EXAMPLE_SCHEMA)


def label_bucket(
    events: pa.Table,
    click_window_ms: int,
    attribution_window_ms: int,
    orphan_clicks_to_retrieval: bool = False,
) -> tuple[pa.Table, dict[str, int]]:
    """(labelled examples, counts) of the events of one user bucket.

    With `orphan_clicks_to_retrieval`, the clicks that join no impression are examples too
    (`retrieval_only_examples`), counted as `retrieval_only_examples`.
    """
    clicks = of_type(events, "click")
    examples, joined, counts = label_clicks(of_type(events, "impression"), clicks, click_window_ms)
    marks, purchase_counts = attribute_purchases(
        joined, of_type(events, "purchase"), attribution_window_ms
    )
    examples, mark_counts = mark_purchases(examples, marks)
    counts = counts | purchase_counts | mark_counts
    if orphan_clicks_to_retrieval:
        orphans = retrieval_only_examples(clicks, joined)
        examples = pa.concat_tables([examples, orphans])
        counts["retrieval_only_examples"] = orphans.num_rows
    return examples, counts


def side_columns(table: schema.Table) -> list[str]:
    """Columns a side table adds to the examples: its joined-example columns but the key."""
    return [c for c in table.column_names if c != table.key and c in JOINED_COLUMNS]


def join_side(examples: pa.Table, side: pa.Table, table: schema.Table) -> pa.Table:
    """Left join of a validated side table (one row per key) onto the examples, in order."""
    columns = side_columns(table)
    rows = pc.index_in(examples.column(table.key), value_set=side.column(table.key))
    added = [side.column(c).take(rows) for c in columns]
    fields = [*examples.schema, *(side.schema.field(c) for c in columns)]
    return pa.Table.from_arrays([*examples.columns, *added], schema=pa.schema(fields))


def catalogue(item_ids: pa.Table, items: pa.Table, columns: list[str]) -> pa.Table:
    """One row per item id of the items table or the events, with the item `columns`."""
    ids = pc.unique(
        pa.chunked_array(
            [*item_ids.column("item_id").chunks, *items.column("item_id").chunks], pa.string()
        )
    )
    rows = pa.table({"item_id": ids}).join(
        items.select(["item_id", *columns]), keys="item_id", join_type="left outer"
    )
    fields = [items.schema.field("item_id"), *(items.schema.field(c) for c in columns)]
    return rows.sort_by("item_id").select(["item_id", *columns]).cast(pa.schema(fields))
