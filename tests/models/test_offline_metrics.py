"""mtlrec.models.offline_metrics against scikit-learn and against values computed by hand."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mtlrec.models import offline_metrics as metrics


@pytest.fixture
def binary_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=500)
    # Rounded scores give many ties, the case rank-based AUC code gets wrong most often.
    scores = np.round(np.clip(0.3 * labels + rng.uniform(0.0, 0.7, size=500), 0.01, 0.99), 2)
    return labels, scores


def test_auc_equals_sklearn(binary_rows):
    labels, scores = binary_rows
    assert metrics.auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-6)


def test_logloss_equals_sklearn(binary_rows):
    labels, scores = binary_rows
    assert metrics.logloss(labels, scores) == pytest.approx(skm.log_loss(labels, scores), abs=1e-6)


def test_rmse_and_mae_equal_sklearn():
    rng = np.random.default_rng(3)
    y, p = rng.normal(5, 2, 300), rng.normal(5, 2, 300)
    assert metrics.rmse(y, p) == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), abs=1e-6)
    assert metrics.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p), abs=1e-6)


def test_roc_curve_equals_sklearn(binary_rows):
    labels, scores = binary_rows
    fpr, tpr = metrics.roc_curve(labels, scores)
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-9)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-9)
    assert metrics.roc_curve([1, 1], [0.2, 0.3]) is None


def test_gauc_by_hand():
    # user a: positive 0.9 beats 0.5, loses to 0.95 -> 0.5 over 3 impressions.
    # user b: (0.8>0.3, 0.8>0.1, 0.3=0.3 -> 1/2, 0.3>0.1) = 3.5/4 over 4 impressions.
    # user c: negatives only -> skipped.
    users = ["b", "a", "c", "b", "a", "b", "c", "a", "b"]
    labels = [1, 1, 0, 1, 0, 0, 0, 0, 0]
    scores = [0.8, 0.9, 0.4, 0.3, 0.5, 0.3, 0.2, 0.95, 0.1]
    result = metrics.gauc(users, labels, scores)
    assert result.value == pytest.approx((3 * 0.5 + 4 * 0.875) / 7, abs=1e-12)
    assert (result.users, result.skipped_users) == (2, 1)


def test_gauc_equals_mean_of_sklearn_aucs_weighted(binary_rows):
    labels, scores = binary_rows
    users = np.arange(labels.size) % 13
    per_user, weights = [], []
    for u in range(13):
        rows = users == u
        per_user.append(skm.roc_auc_score(labels[rows], scores[rows]))
        weights.append(rows.sum())
    expected = np.average(per_user, weights=weights)
    assert metrics.gauc(users, labels, scores).value == pytest.approx(expected, abs=1e-9)


def test_gauc_with_no_two_class_user_is_nan():
    result = metrics.gauc(["a", "b"], [1, 0], [0.3, 0.2])
    assert math.isnan(result.value)
    assert (result.users, result.skipped_users) == (0, 2)


def test_ece_by_hand():
    # bins=2: [0.1, 0.3] -> predicted 0.2, observed 0.5; [0.6, 0.7, 0.9, 1.0] -> 0.8 vs 0.75.
    probabilities = [0.1, 0.3, 0.6, 0.7, 0.9, 1.0]
    labels = [0, 1, 1, 0, 1, 1]
    assert metrics.ece(labels, probabilities, bins=2) == pytest.approx(
        2 / 6 * 0.3 + 4 / 6 * 0.05, abs=1e-12
    )
    b = metrics.calibration_bins(labels, probabilities, bins=2)
    np.testing.assert_allclose(b.mean_predicted, [0.2, 0.8])
    np.testing.assert_allclose(b.observed_rate, [0.5, 0.75])
    np.testing.assert_array_equal(b.count, [2, 4])


def test_ece_default_twenty_bins():
    # 0.02 and 0.04 share bin [0, 0.05); 0.52 is alone in [0.5, 0.55).
    assert metrics.ece([0, 1, 1], [0.02, 0.04, 0.52]) == pytest.approx(
        2 / 3 * abs(0.5 - 0.03) + 1 / 3 * abs(1 - 0.52), abs=1e-12
    )


def test_calibration_ratio():
    assert metrics.calibration_ratio([0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert metrics.calibration_ratio([0, 1], [0.5, 0.7]) == pytest.approx(1.2)
    assert math.isnan(metrics.calibration_ratio([0, 0], [0.1, 0.2]))


RANKED = np.array([[3, 1, 4, 2], [5, 6, 7, 8]])
RELEVANT = [{1, 2}, {9}]


def test_recall_at_k_by_hand():
    assert metrics.recall_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / 2 + 0) / 2)
    assert metrics.recall_at_k(RANKED, RELEVANT, 4) == pytest.approx((2 / 2 + 0) / 2)


def test_hitrate_at_k_by_hand():
    assert metrics.hitrate_at_k(RANKED, RELEVANT, 1) == 0.0
    assert metrics.hitrate_at_k(RANKED, RELEVANT, 2) == 0.5


def test_ndcg_at_k_by_hand():
    ideal = 1 + 1 / math.log2(3)
    assert metrics.ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx((1 / math.log2(3)) / ideal / 2)
    assert metrics.ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / ideal / 2
    )
    assert metrics.ndcg_at_k(np.array([[9, 0]]), [{9}], 2) == pytest.approx(1.0)


def test_empty_inputs_raise():
    with pytest.raises(ValueError, match="empty input"):
        metrics.auc([], [])
    with pytest.raises(ValueError, match="empty input"):
        metrics.gauc([], [], [])
    with pytest.raises(ValueError, match="same length"):
        metrics.rmse([1.0, 2.0], [1.0])


def test_one_class_auc_is_nan():
    assert math.isnan(metrics.auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_ranking_bad_input_raise():
    with pytest.raises(ValueError, match="no relevant item"):
        metrics.recall_at_k(RANKED, [{1}, set()], 2)
    with pytest.raises(ValueError, match="k=5"):
        metrics.ndcg_at_k(RANKED, RELEVANT, 5)
