"""The exact counts and oracle AUCs of the generated logs (semantics: `mtlrec.datasets.synthetic.generate`).

The accumulator sees every good event that was written (not the injected bad rows or
duplicates, which are counted by the writer) and applies the join, attribution and time
split rules to them at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlrec.datasets.synthetic.events import CLICK, IMPRESSION, PURCHASE, Events
from mtlrec.features import schema

CLICK_WINDOW_MS = 1_800_000
ATTRIBUTION_WINDOW_MS = 86_400_000


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None with one class only."""
    labels = labels.astype(bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


class TruthAccumulator:
    """Collects the compact columns the truth needs, day by day."""

    def __init__(self) -> None:
        self._parts: dict[int, list[Events]] = {IMPRESSION: [], CLICK: [], PURCHASE: []}
        self._keep = {
            IMPRESSION: ("ts", "p_click", "p_buy"),  # stored in impression-index order
            CLICK: ("imp", "user", "item", "ts"),
            PURCHASE: ("user", "item", "ts"),
        }
        self._impressions = 0

    def add(self, events: Events) -> None:
        """Adds one written day; its impressions must be the next block of indices."""
        imp = np.flatnonzero(events["kind"] == IMPRESSION)
        imp = imp[np.argsort(events["imp"][imp])]
        expected = np.arange(self._impressions, self._impressions + len(imp))
        if not np.array_equal(events["imp"][imp], expected):
            raise RuntimeError("generator bug: impressions were not written in index order")
        self._impressions += len(imp)
        for kind, columns in self._keep.items():
            rows = imp if kind == IMPRESSION else events["kind"] == kind
            # float32 probabilities: the impression columns dominate memory at 10 M events
            self._parts[kind].append(
                {
                    c: events[c][rows].astype(np.float32 if c.startswith("p_") else np.int64)
                    for c in columns
                }
            )

    def _table(self, kind: int) -> Events:
        parts = self._parts[kind]
        table = {c: np.concatenate([p.pop(c) for p in parts]) for c in self._keep[kind]}
        parts.clear()
        return table

    def finish(self, rejected: dict[str, int], duplicates: int) -> dict:
        """The `truth.json` content except seed and params."""
        imps, clicks, purchases = (self._table(k) for k in (IMPRESSION, CLICK, PURCHASE))
        n_imps = len(imps["ts"])
        delay = clicks["ts"] - imps["ts"][np.maximum(clicks["imp"], 0)]
        joined = (clicks["imp"] >= 0) & (delay >= 0) & (delay <= CLICK_WINDOW_MS)
        clicked = np.zeros(n_imps, bool)
        clicked[clicks["imp"][joined]] = True
        attributed_imp = _attribute(purchases, {c: v[joined] for c, v in clicks.items()})
        purchased = np.zeros(n_imps, bool)
        purchased[attributed_imp[attributed_imp >= 0]] = True

        all_ts = np.concatenate([imps["ts"], clicks["ts"], purchases["ts"]])
        split_ts = _split_ts(all_ts)
        evaluation = imps["ts"] >= (split_ts if split_ts is not None else 0)
        n_attributed = int((attributed_imp >= 0).sum())
        counts = {
            "events_read": len(all_ts) + duplicates + sum(rejected.values()),
            "duplicates": duplicates,
            "rejected": {r: rejected.get(r, 0) for r in schema.REJECT_REASONS},
            "impressions": n_imps,
            "clicks_joined": int(joined.sum()),
            "purchases_attributed": n_attributed,
            "orphan_clicks": int((~joined).sum()),
            "orphan_purchases": len(attributed_imp) - n_attributed,
            "train_examples": int((~evaluation).sum()),
            "eval_examples": int(evaluation.sum()),
            "clicked_impressions": int(clicked.sum()),
            "purchased_impressions": int(purchased.sum()),
        }
        oracle = {
            "click_auc_eval": _rounded(auc(imps["p_click"][evaluation], clicked[evaluation])),
            "purchase_auc_eval": _rounded(auc(imps["p_buy"][evaluation], purchased[evaluation])),
        }
        return {"split_ts": split_ts, "counts": counts, "oracle": oracle}


def _split_ts(ts: np.ndarray) -> int | None:
    """The event time from which the latest fifth of the events lie (the product's default
    `data.eval_fraction`): sorted ts at row floor(0.8 * n); None without events."""
    if len(ts) == 0:
        return None
    return int(np.sort(ts)[len(ts) * 4 // 5])


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _attribute(purchases: Events, joined_clicks: Events) -> np.ndarray:
    """Per purchase, the impression of the last joined click of the same user and item at
    most ATTRIBUTION_WINDOW_MS earlier (-1: not attributed)."""
    left = pd.DataFrame({k: purchases[k] for k in ("user", "item", "ts")})
    left["row"] = np.arange(len(left))
    right = pd.DataFrame(
        {
            "user": joined_clicks["user"],
            "item": joined_clicks["item"],
            "click_ts": joined_clicks["ts"],
            "imp": joined_clicks["imp"],
        }
    )
    merged = pd.merge_asof(
        left.sort_values(["ts", "row"]),
        right.sort_values(["click_ts", "imp"]),
        left_on="ts",
        right_on="click_ts",
        by=["user", "item"],
        direction="backward",
        tolerance=ATTRIBUTION_WINDOW_MS,
        allow_exact_matches=True,
    )
    out = np.full(len(left), -1, np.int64)
    matched = merged["imp"].notna().to_numpy()
    out[merged["row"].to_numpy()[matched]] = merged["imp"].to_numpy()[matched].astype(np.int64)
    return out
