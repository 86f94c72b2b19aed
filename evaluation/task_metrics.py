"""Retrieval queries and metrics over the full catalogue, keyed as in SPEC §13.

recall@K, ndcg@K and hitrate@K for every K. The metrics of the row-scored kinds (binary,
ESMM, regression) belong to their kinds (`mtlrec.models.tasks`). A metric with no row to
measure is None (JSON null), never a made-up number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from mtlrec.models import offline_metrics


def clean(value):
    """NaN and inf become None (JSON null), recursively; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


@dataclasses.dataclass(frozen=True)
class Queries:
    """One retrieval query per eval user with at least one relevant interaction.

    Attributes:
      rows: eval row whose user and request context form the query (the user's earliest
        relevant row).
      relevant: per query, catalogue indices of every item the user interacted with in the
        eval span; items missing from the catalogue get indices past its end, so they count
        as relevant but can never be retrieved.
      outside_catalogue: relevant interactions whose item is not in the catalogue.
    """

    rows: np.ndarray
    relevant: list[np.ndarray]
    outside_catalogue: int


def build_queries(
    columns: dict[str, np.ndarray], relevant_rows: np.ndarray, catalogue_ids: np.ndarray
) -> Queries:
    """Groups the relevant eval rows by user into queries."""
    index = {item: i for i, item in enumerate(catalogue_ids)}
    rows = np.flatnonzero(relevant_rows)
    users = columns["user_key"][rows]
    items = columns["item_key"][rows]
    for item in items:
        if item not in index:
            index[item] = len(index)
    item_index = np.array([index[i] for i in items], dtype=np.int64)
    order = np.lexsort((columns["event_ts"][rows], users))
    users_sorted = users[order]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    groups = np.split(item_index[order], starts[1:])
    return Queries(
        rows=rows[order][starts],
        relevant=[np.unique(g) for g in groups],
        outside_catalogue=int((item_index >= len(catalogue_ids)).sum()),
    )


def retrieval(ranked: np.ndarray, relevant: Sequence[np.ndarray], ks: Sequence[int]) -> dict:
    """recall@K, ndcg@K and hitrate@K; a K beyond the list length is measured at its end."""
    keys = [f"{m}@{k}" for m in ("recall", "ndcg", "hitrate") for k in ks]
    if len(relevant) == 0:
        return dict.fromkeys(keys)
    out = {}
    for name, fn in (
        ("recall", offline_metrics.recall_at_k),
        ("ndcg", offline_metrics.ndcg_at_k),
        ("hitrate", offline_metrics.hitrate_at_k),
    ):
        for k in ks:
            out[f"{name}@{k}"] = fn(ranked, relevant, min(k, ranked.shape[1]))
    return out
