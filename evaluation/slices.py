"""Slices of the evaluation split (SPEC §9): user activity, item popularity, device.

Activity and popularity are measured on the training span only (impressions per user and
per item from the training TFRecords), so a slice never depends on evaluation outcomes.

- user_activity: `cold` (< 5 training impressions, including users never seen in training),
  `warm` (5 to 49), `heavy` (50 or more).
- item_popularity: items sorted by training impressions, most first; `head` items carry the
  first 20 % of the impression volume, `torso` the next 30 %, `tail` the rest (including
  items never shown in training).
- device: the raw device of the impression; an empty value is `unknown`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLD_BELOW = 5
HEAVY_FROM = 50
HEAD_SHARE = 0.2
TORSO_SHARE = 0.3
UNKNOWN_DEVICE = "unknown"
TIER_ORDER = {
    "user_activity": ("cold", "warm", "heavy"),
    "item_popularity": ("head", "torso", "tail"),
}


def text_keys(keys: Sequence[object]) -> np.ndarray:
    """Raw keys as str (TFRecords give bytes)."""
    values = np.asarray(keys, dtype=object).reshape(-1)
    return np.array(
        [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object
    )


def impression_counts(keys: Sequence[object]) -> pd.Series:
    """Training impressions per key (user or item), as a Series indexed by the key."""
    return pd.Series(text_keys(keys)).value_counts()


def user_activity(users: Sequence[object], train_impressions: pd.Series) -> np.ndarray:
    """cold / warm / heavy per row, from the user's training-span impressions."""
    seen = pd.Series(text_keys(users)).map(train_impressions).fillna(0).to_numpy()
    return np.where(seen < COLD_BELOW, "cold", np.where(seen < HEAVY_FROM, "warm", "heavy"))


def popularity_tiers(train_impressions: pd.Series) -> pd.Series:
    """head / torso / tail per training item, by cumulative share of impression volume."""
    ordered = train_impressions.sort_values(ascending=False, kind="stable")
    # Share of the volume held by the items strictly before this one: the item that crosses
    # a boundary still belongs to the upper tier.
    before = (ordered.cumsum() - ordered) / max(int(ordered.sum()), 1)
    tiers = np.where(
        before < HEAD_SHARE, "head", np.where(before < HEAD_SHARE + TORSO_SHARE, "torso", "tail")
    )
    return pd.Series(tiers, index=ordered.index)


def item_popularity(items: Sequence[object], train_impressions: pd.Series) -> np.ndarray:
    """head / torso / tail per row; items unseen in training are tail."""
    tiers = popularity_tiers(train_impressions)
    return pd.Series(text_keys(items)).map(tiers).fillna("tail").to_numpy(dtype=object)


def device(devices: Sequence[object]) -> np.ndarray:
    """The raw device per row; empty means unknown."""
    values = text_keys(devices)
    return np.where(values == "", UNKNOWN_DEVICE, values).astype(object)


def assign(
    slice_name: str,
    *,
    users: Sequence[object],
    items: Sequence[object] | None,
    devices: Sequence[object] | None,
    user_counts: pd.Series,
    item_counts: pd.Series,
) -> np.ndarray | None:
    """The slice value of every row, or None when the rows lack what the slice needs."""
    if slice_name == "user_activity":
        return user_activity(users, user_counts)
    if slice_name == "item_popularity":
        return None if items is None else item_popularity(items, item_counts)
    if slice_name == "device":
        return None if devices is None else device(devices)
    raise ValueError(
        f"evaluation.slices: unknown slice {slice_name!r}; "
        "valid: user_activity, item_popularity, device"
    )
