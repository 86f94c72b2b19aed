"""Metrics of one task on (a subset of) the evaluation rows, keyed as in SPEC §13.

- binary: auc, gauc, logloss, ece, calibration_ratio; a binary task other than click also
  gets auc_on_clicks (the same rows restricted to clicked impressions) when the data has
  a click label.
- regression: rmse and mae in the label's original units (expm1 of log1p labels and
  predictions, predictions floored at 0 since the unit is non-negative), on rows where the
  label's mask is 1; keys carry `_s` when the label is in seconds (its column ends in `_s`).
- retrieval: recall@K, ndcg@K, hitrate@K for every K, over the full catalogue.
A metric with no row to measure is None (JSON null), never a made-up number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from features.declarations import LABELS, RANKING_MASK
from models import eval_metrics
from models.config import TaskConfig

CLICK = "click"


def clean(value):
    """NaN and inf become None (JSON null), recursively; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _binary(labels, scores, users, bins: int) -> tuple[dict, dict]:
    keys = ("auc", "gauc", "logloss", "ece", "calibration_ratio")
    if labels.size == 0:
        return dict.fromkeys(keys), {"rows": 0}
    group = eval_metrics.gauc(users, labels, scores)
    metrics = {
        "auc": eval_metrics.auc(labels, scores),
        "gauc": group.value,
        "logloss": eval_metrics.logloss(labels, scores),
        "ece": eval_metrics.ece(labels, scores, bins),
        "calibration_ratio": eval_metrics.calibration_ratio(labels, scores),
    }
    counts = {
        "rows": int(labels.size),
        "positives": int((labels > 0.5).sum()),
        "gauc_users": group.users,
        "gauc_skipped_users": group.skipped_users,
    }
    return metrics, counts


def regression_keys(label_name: str) -> tuple[str, str]:
    suffix = "_s" if LABELS[label_name].source.endswith("_s") else ""
    return f"rmse{suffix}", f"mae{suffix}"


def _regression(label_name: str, targets, predictions) -> tuple[dict, dict]:
    rmse_key, mae_key = regression_keys(label_name)
    if targets.size == 0:
        return {rmse_key: None, mae_key: None}, {"rows": 0}
    if LABELS[label_name].log1p:
        targets = np.expm1(targets)
        predictions = np.maximum(np.expm1(predictions), 0.0)
    metrics = {
        rmse_key: eval_metrics.rmse(targets, predictions),
        mae_key: eval_metrics.mae(targets, predictions),
    }
    return metrics, {"rows": int(targets.size)}


def ranking_task(
    task: TaskConfig,
    columns: dict[str, np.ndarray],
    predictions: np.ndarray,
    rows: np.ndarray,
    *,
    ece_bins: int,
) -> tuple[dict, dict]:
    """(metrics, counts) of a binary or regression task on the rows where `rows` is True.

    Retrieval-only rows (`RANKING_MASK` 0: orphan clicks) are never ranking rows.
    """
    label = LABELS[task.label]
    if RANKING_MASK in columns:
        rows = rows & (columns[RANKING_MASK] > 0)
    if task.kind == "regression":
        defined = rows if label.mask is None else rows & (columns[label.mask] > 0)
        return _regression(label.name, columns[label.name][defined], predictions[defined])
    y = columns[label.name]
    metrics, counts = _binary(y[rows], predictions[rows], columns["user_key"][rows], ece_bins)
    if label.name != CLICK and CLICK in columns:
        clicked = rows & (columns[CLICK] > 0)
        on_clicks = y[clicked]
        metrics["auc_on_clicks"] = (
            eval_metrics.auc(on_clicks, predictions[clicked]) if on_clicks.size else None
        )
        counts["rows_on_clicks"] = int(on_clicks.size)
    return metrics, counts


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
        ("recall", eval_metrics.recall_at_k),
        ("ndcg", eval_metrics.ndcg_at_k),
        ("hitrate", eval_metrics.hitrate_at_k),
    ):
        for k in ks:
            out[f"{name}@{k}"] = fn(ranked, relevant, min(k, ranked.shape[1]))
    return out
