"""Offline metrics each row-scored kind computes, on hand-written eval rows."""

import math

import numpy as np
import pytest

from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import kind_of
from mtlrec.models.tasks.regression import regression_keys

PURCHASE = TaskConfig(name="purchase", kind="binary", label="purchase", esmm_parent="click")
DWELL = TaskConfig(name="dwell", kind="regression", label="dwell")
ALL = np.ones(5, bool)


def _scored(task, columns, predictions, rows, *, ece_bins):
    return kind_of(task).offline_metrics(task, columns, predictions, rows, ece_bins=ece_bins)


def test_binary_task_with_auc_on_clicks():
    columns = {
        "user_key": np.array(["u1", "u1", "u2", "u2", "u2"], dtype=object),
        "purchase": np.array([1.0, 0, 0, 1, 0]),
        "click": np.array([1.0, 1, 0, 1, 0]),
    }
    predictions = np.array([0.9, 0.2, 0.5, 0.1, 0.3])
    metrics, counts = _scored(PURCHASE, columns, predictions, ALL, ece_bins=20)
    # all rows: positives 0.9, 0.1 against negatives 0.2, 0.5, 0.3 -> 3 wins of 6
    assert metrics["auc"] == pytest.approx(0.5)
    # u1: 0.9 > 0.2 -> 1 (2 rows); u2: 0.1 below 0.5 and 0.3 -> 0 (3 rows)
    assert metrics["gauc"] == pytest.approx(2 / 5)
    # clicked rows 0, 1, 3: positives 0.9, 0.1 against negative 0.2 -> 1 win of 2
    assert metrics["auc_on_clicks"] == pytest.approx(0.5)
    assert metrics["calibration_ratio"] == pytest.approx(np.mean(predictions) / 0.4)
    assert counts == {
        "rows": 5,
        "positives": 2,
        "gauc_users": 2,
        "gauc_skipped_users": 0,
        "rows_on_clicks": 3,
    }


def test_regression_in_seconds_on_masked_rows():
    seconds = np.array([10.0, 0.0, 4.0, 1.0])
    predicted = np.log1p(np.array([12.0, 100.0, 1.0, 0.0]))
    predicted[3] = -0.5  # log1p space below 0: a negative duration, floored at 0 s
    columns = {"dwell": np.log1p(seconds), "dwell_mask": np.array([1.0, 0, 1, 1])}
    metrics, counts = _scored(DWELL, columns, predicted, np.ones(4, bool), ece_bins=20)
    # errors 2 s, 3 s, 1 s; the masked row (error 100 s) is left out
    assert metrics["rmse_s"] == pytest.approx(math.sqrt((4 + 9 + 1) / 3))
    assert metrics["mae_s"] == pytest.approx(2.0)
    assert counts == {"rows": 3}
    assert regression_keys("rating") == ("rmse", "mae")


def test_retrieval_only_rows_are_left_out_of_ranking_metrics():
    columns = {
        "user_key": np.array(["u1", "u1", "u2", "u2", "u2"], dtype=object),
        "click": np.array([1.0, 0, 1, 1, 0]),
        "ranking_mask": np.array([1.0, 1, 0, 1, 1]),
        "dwell": np.log1p(np.array([10.0, 0, 50, 4, 0])),
        "dwell_mask": np.array([1.0, 0, 0, 1, 0]),
    }
    click = TaskConfig(name="click", kind="binary", label="click")
    # Row 2 is an orphan click (mask 0) scored low: it would cost a win if it were ranked.
    predictions = np.array([0.9, 0.2, 0.1, 0.6, 0.3])
    metrics, counts = _scored(click, columns, predictions, ALL, ece_bins=20)
    assert metrics["auc"] == pytest.approx(1.0)
    assert counts["rows"] == 4
    columns["dwell_mask"] = np.array([1.0, 0, 1, 1, 0])
    dwell, dwell_counts = _scored(
        DWELL, columns, np.log1p(np.array([12.0, 0, 0, 4, 0])), ALL, ece_bins=20
    )
    assert dwell["rmse_s"] == pytest.approx(math.sqrt(4 / 2))
    assert dwell_counts == {"rows": 2}


def test_empty_subset_gives_nulls_not_errors():
    columns = {"dwell": np.zeros(2), "dwell_mask": np.zeros(2)}
    metrics, counts = _scored(DWELL, columns, np.zeros(2), np.ones(2, bool), ece_bins=20)
    assert metrics == {"rmse_s": None, "mae_s": None}
    assert counts == {"rows": 0}
