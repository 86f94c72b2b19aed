"""The label join (SPEC §5) on the events of one user bucket (see `pipeline.keyed`).

Every key of the join starts with the user, so one bucket of users holds all it needs:
1. key (user_id, request_id, item_id): one example per impression key; a click joins when
   0 <= click_ts - impression_ts <= click window; click = 1 when any click joins; dwell_s =
   max dwell of the joined clicks, has_dwell = 1 when any of them has one.
2. key (user_id, item_id): a purchase is attributed to the same user's joined click on the
   item with 0 <= purchase_ts - click_ts <= attribution window, the last such click
   (largest click_ts) winning, and the winners' impressions get purchase = 1.
Side tables join on their key (items: item_id, users: user_id).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import readers, schema
from features.declarations import JOINED_COLUMNS

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


def _frame(table: pa.Table, columns) -> pd.DataFrame:
    return pd.DataFrame({c: table.column(c).to_numpy(zero_copy_only=False) for c in columns})


def _to_table(frame: pd.DataFrame, arrow_schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(
        frame[list(arrow_schema.names)], schema=arrow_schema, preserve_index=False
    )


def label_clicks(
    impressions: pa.Table, clicks: pa.Table, window_ms: int
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Step 1: (examples, joined clicks, counts) for the impressions and clicks of a bucket."""
    keys = list(IMPRESSION_KEY)
    imps = _frame(impressions, [*EXAMPLE_SCHEMA.names[:6], readers.FILE_COLUMN, "_row"])
    first = imps.sort_values(["ts", readers.FILE_COLUMN, "_row"], kind="stable")
    examples = first.drop_duplicates(keys, keep="first").reset_index(drop=True)
    cl = _frame(clicks, ["event_id", "user_id", "item_id", "ts", "request_id", "dwell_s"])
    pairs = cl.merge(imps[[*keys, "ts"]], on=keys, suffixes=("", "_imp"))
    delay = pairs["ts"] - pairs["ts_imp"]
    pairs = pairs[(delay >= 0) & (delay <= window_ms)].drop_duplicates("event_id")
    per_key = pairs.groupby(keys, sort=False).agg(
        dwell_s=("dwell_s", "max"), dwell_rows=("dwell_s", "count")
    )
    examples = examples.merge(per_key.reset_index(), on=keys, how="left")
    examples["click"] = examples["dwell_rows"].notna().astype(np.int64)
    examples["has_dwell"] = (examples["dwell_rows"].fillna(0) > 0).astype(np.int64)
    examples["purchase"] = np.zeros(len(examples), dtype=np.int64)
    examples["impression"] = np.ones(len(examples), dtype=np.int64)
    joined = cl[cl["event_id"].isin(pairs["event_id"])]
    counts = {
        "impressions": impressions.num_rows,
        "impressions_deduplicated": impressions.num_rows - len(examples),
        "clicks_joined": len(joined),
        "orphan_clicks": clicks.num_rows - len(joined),
        "clicked_impressions": int(examples["click"].sum()),
    }
    return _to_table(examples, EXAMPLE_SCHEMA), _to_table(joined, JOINED_CLICK_SCHEMA), counts


def attribute_purchases(
    joined_clicks: pa.Table, purchases: pa.Table, window_ms: int
) -> tuple[pa.Table, dict[str, int]]:
    """Step 2: (impression keys to mark purchased, counts) for the purchases of a bucket."""
    cl = _frame(joined_clicks, JOINED_CLICK_SCHEMA.names)
    pu = _frame(purchases, ["event_id", "user_id", "item_id", "ts"])
    pairs = pu.merge(cl, on=list(PURCHASE_KEY), suffixes=("", "_click"))
    delay = pairs["ts"] - pairs["ts_click"]
    pairs = pairs[(delay >= 0) & (delay <= window_ms)]
    # Last click wins; equal click times fall back to the smaller request_id (deterministic).
    pairs = pairs.sort_values(
        ["event_id", "ts_click", "request_id"], ascending=[True, False, True], kind="stable"
    )
    winners = pairs.drop_duplicates("event_id", keep="first")
    marks = winners[list(IMPRESSION_KEY)].drop_duplicates()
    counts = {
        "purchases_attributed": len(winners),
        "orphan_purchases": purchases.num_rows - len(winners),
    }
    return _to_table(marks, MARK_SCHEMA), counts


def mark_purchases(examples: pa.Table, marks: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Step 2: purchase = 1 on the examples whose key some purchase was attributed to."""
    ex = examples.to_pandas()
    keys = list(IMPRESSION_KEY)
    marked = _frame(marks, keys).drop_duplicates()
    marked["_marked"] = True
    ex = ex.merge(marked, on=keys, how="left")
    ex["purchase"] = ex["_marked"].notna().astype(np.int64)
    return _to_table(ex, examples.schema), {"purchased_impressions": int(ex["purchase"].sum())}


def of_type(events: pa.Table, event_type: str) -> pa.Table:
    return events.filter(pc.equal(events.column("event_type"), event_type))


def retrieval_only_examples(clicks: pa.Table, joined_clicks: pa.Table) -> pa.Table:
    """Examples of the clicks that joined no impression: click = 1, impression = 0.

    They teach the retrieval task (which pairs a user clicks); the ranking tasks mask them
    out, having no impression to rank (`features.declarations.RANKING_MASK`).
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
    ids = pd.unique(
        np.concatenate(
            [
                item_ids.column("item_id").to_numpy(zero_copy_only=False),
                items.column("item_id").to_numpy(zero_copy_only=False),
            ]
        )
    )
    rows = pd.DataFrame({"item_id": ids}).merge(
        _frame(items, ["item_id", *columns]), on="item_id", how="left"
    )
    rows = rows.sort_values("item_id", kind="stable")
    fields = [items.schema.field("item_id"), *(items.schema.field(c) for c in columns)]
    return _to_table(rows, pa.schema(fields))
