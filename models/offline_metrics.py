"""Offline evaluation metrics as pure, vectorised numpy functions (SPEC §9).

Conventions shared by every function:
- Inputs are array-likes of equal length; an empty input raises `ValueError`.
- A metric that is undefined on its input returns `nan` instead of raising, so one
  degenerate slice never aborts a whole evaluation: AUC with a single class,
  calibration_ratio when no label is positive. Callers report `nan` as null.
- Probabilities are clipped to [eps, 1 - eps] (eps = float64 machine epsilon) only inside
  the log loss, the same rule scikit-learn applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

_EPS = np.finfo(np.float64).eps


def _arrays(*arrays: object, name: str) -> tuple[np.ndarray, ...]:
    out = tuple(np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays)
    if out[0].size == 0:
        raise ValueError(f"{name}: empty input; pass at least one row")
    if any(a.size != out[0].size for a in out):
        sizes = [a.size for a in out]
        raise ValueError(f"{name}: inputs must have the same length, got {sizes}")
    return out


def _average_ranks(keys: np.ndarray) -> np.ndarray:
    """1-based ranks of `keys` with ties sharing their average rank (Mann-Whitney)."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def auc(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the ROC curve (ties count one half); nan when only one class is present."""
    y, s = _arrays(labels, scores, name="auc")
    positive = y > 0.5
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclasses.dataclass(frozen=True)
class GroupAUC:
    """Impression-weighted mean of per-user AUCs.

    Attributes:
      value: the GAUC; nan when no user has both classes.
      users: users that entered the mean (both classes present).
      skipped_users: users left out because all their impressions have one label.
    """

    value: float
    users: int
    skipped_users: int


def gauc(users: Sequence[object], labels: Sequence[float], scores: Sequence[float]) -> GroupAUC:
    """Per-user AUC weighted by the user's number of impressions (users with one class skipped)."""
    y, s = _arrays(labels, scores, name="gauc")
    user_keys = np.asarray(users).reshape(-1)
    if user_keys.size != y.size:
        raise ValueError(f"gauc: users has {user_keys.size} rows, labels {y.size}")
    _, u = np.unique(user_keys, return_inverse=True)
    order = np.lexsort((s, u))
    u_sorted, s_sorted, y_sorted = u[order], s[order], y[order] > 0.5
    # Ranks restart at every user; ties (same user, same score) share their average rank.
    n_users = int(u.max()) + 1
    user_size = np.bincount(u_sorted, minlength=n_users)
    user_start = np.concatenate(([0], np.cumsum(user_size)[:-1]))
    position = np.arange(y.size) - user_start[u_sorted]
    new_group = np.ones(y.size, dtype=bool)
    new_group[1:] = (u_sorted[1:] != u_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])
    group = np.cumsum(new_group) - 1
    mean_position = np.bincount(group, weights=position) / np.bincount(group)
    rank = mean_position[group] + 1.0
    n_pos = np.bincount(u_sorted, weights=y_sorted, minlength=n_users)
    n_neg = user_size - n_pos
    rank_sum = np.bincount(u_sorted, weights=rank * y_sorted, minlength=n_users)
    valid = (n_pos > 0) & (n_neg > 0)
    skipped = int(n_users - valid.sum())
    if not valid.any():
        return GroupAUC(float("nan"), 0, skipped)
    per_user = (rank_sum[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2.0) / (
        n_pos[valid] * n_neg[valid]
    )
    value = float(np.average(per_user, weights=user_size[valid]))
    return GroupAUC(value, int(valid.sum()), skipped)


def logloss(labels: Sequence[float], probabilities: Sequence[float]) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [eps, 1 - eps])."""
    y, p = _arrays(labels, probabilities, name="logloss")
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


@dataclasses.dataclass(frozen=True)
class CalibrationBins:
    """Equal-width bins on the predicted probability; empty bins are left out."""

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray


def calibration_bins(
    labels: Sequence[float], probabilities: Sequence[float], bins: int = 20
) -> CalibrationBins:
    """Mean prediction, observed positive rate and row count per equal-width probability bin."""
    if bins < 1:
        raise ValueError(f"calibration bins must be >= 1, got {bins}")
    y, p = _arrays(labels, probabilities, name="calibration_bins")
    # p = 1.0 falls into the last bin, not past it.
    index = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    filled = count > 0
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    return CalibrationBins(
        mean_predicted=sum_p[filled] / count[filled],
        observed_rate=sum_y[filled] / count[filled],
        count=count[filled],
    )


def ece(labels: Sequence[float], probabilities: Sequence[float], bins: int = 20) -> float:
    """Expected calibration error: Σ_b (n_b / n) · |observed_b − predicted_b|."""
    b = calibration_bins(labels, probabilities, bins)
    weights = b.count / b.count.sum()
    return float(np.sum(weights * np.abs(b.observed_rate - b.mean_predicted)))


def calibration_ratio(labels: Sequence[float], probabilities: Sequence[float]) -> float:
    """Mean predicted probability / observed positive rate; nan when no label is positive."""
    y, p = _arrays(labels, probabilities, name="calibration_ratio")
    observed = y.mean()
    return float(p.mean() / observed) if observed > 0 else float("nan")


def rmse(targets: Sequence[float], predictions: Sequence[float]) -> float:
    """Root mean squared error."""
    y, p = _arrays(targets, predictions, name="rmse")
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(targets: Sequence[float], predictions: Sequence[float]) -> float:
    """Mean absolute error."""
    y, p = _arrays(targets, predictions, name="mae")
    return float(np.mean(np.abs(y - p)))


def roc_curve(
    labels: Sequence[float], scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray] | None:
    """False and true positive rates at every distinct score threshold; None with one class."""
    y, s = _arrays(labels, scores, name="roc_curve")
    positive = y > 0.5
    if positive.all() or not positive.any():
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, pos_sorted = s[order], positive[order]
    last_of_threshold = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(pos_sorted)[last_of_threshold]
    fp = np.cumsum(~pos_sorted)[last_of_threshold]
    tpr = np.r_[0.0, tp / positive.sum()]
    fpr = np.r_[0.0, fp / (~positive).sum()]
    return fpr, tpr


def relevance_hits(ranked: np.ndarray, relevant: Sequence[Iterable[int]]) -> np.ndarray:
    """Boolean [queries, list length]: is ranked[q, j] one of query q's relevant items."""
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or ranked.shape[0] == 0:
        raise ValueError(f"ranked: expected a non-empty [queries, k] array, got {ranked.shape}")
    if len(relevant) != ranked.shape[0]:
        raise ValueError(f"relevant: {len(relevant)} queries, ranked has {ranked.shape[0]}")
    wanted_lists = [np.fromiter(r, dtype=np.int64) for r in relevant]
    largest = max((int(w.max()) for w in wanted_lists if w.size), default=0)
    # Encode (query, item) pairs as one int64 so membership is a single np.isin.
    stride = max(int(ranked.max(initial=0)), largest) + 1
    wanted = np.concatenate([q * stride + w for q, w in enumerate(wanted_lists)])
    codes = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * stride + ranked
    return np.isin(codes, wanted)


def _relevant_counts(relevant: Sequence[Iterable[int]]) -> np.ndarray:
    counts = np.array([len(set(r)) for r in relevant], dtype=np.float64)
    if (counts == 0).any():
        first = int(np.argmax(counts == 0))
        raise ValueError(
            f"relevant: query {first} has no relevant item; leave such queries out "
            "(their recall is undefined)"
        )
    return counts


def _check_k(ranked: np.ndarray, k: int) -> None:
    if not 1 <= k <= np.shape(ranked)[1]:
        raise ValueError(f"k={k}: must be between 1 and the ranked list length {ranked.shape[1]}")


def recall_at_k(ranked: np.ndarray, relevant: Sequence[Iterable[int]], k: int) -> float:
    """Mean over queries of |top-k ∩ relevant| / |relevant|."""
    ranked = np.asarray(ranked)
    _check_k(ranked, k)
    hits = relevance_hits(ranked[:, :k], relevant)
    return float(np.mean(hits.sum(axis=1) / _relevant_counts(relevant)))


def hitrate_at_k(ranked: np.ndarray, relevant: Sequence[Iterable[int]], k: int) -> float:
    """Fraction of queries with at least one relevant item in the top k."""
    ranked = np.asarray(ranked)
    _check_k(ranked, k)
    _relevant_counts(relevant)
    return float(np.mean(relevance_hits(ranked[:, :k], relevant).any(axis=1)))


def ndcg_at_k(ranked: np.ndarray, relevant: Sequence[Iterable[int]], k: int) -> float:
    """Mean binary-relevance NDCG@k: DCG = Σ_j hit_j / log2(j + 2), ideal = all hits first."""
    ranked = np.asarray(ranked)
    _check_k(ranked, k)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = relevance_hits(ranked[:, :k], relevant) @ discount
    ideal_hits = np.minimum(_relevant_counts(relevant), k).astype(np.int64)
    ideal = np.r_[0.0, np.cumsum(discount)][ideal_hits]
    return float(np.mean(dcg / ideal))
