"""Hand-computed losses of every task layer and of both weightings."""

import math

import pytest
import tensorflow as tf

from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import validate_tasks
from mtlrec.models.tasks.binary import BinaryTask
from mtlrec.models.tasks.esmm import EsmmTask
from mtlrec.models.tasks.regression import MaskedRegressionTask
from mtlrec.models.tasks.retrieval import RetrievalTask
from mtlrec.models.weighting import FixedWeighting, UncertaintyWeighting


def _f(values):
    return tf.constant(values, tf.float32)


def test_binary_cross_entropy_on_logits():
    loss = BinaryTask(name="click")(_f([1, 0, 1]), _f([2.0, -1.0, 0.5]))
    # -log(sigmoid(z)) = log(1 + e^-z) for positives, log(1 + e^z) for negatives.
    expected = (
        math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(-0.5))
    ) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_binary_weights_leave_retrieval_only_rows_out_of_loss_and_auc():
    task = BinaryTask(name="click")
    # The middle row is a retrieval-only click (weight 0) whose logit says "no click".
    loss = task(_f([1, 1, 0]), _f([2.0, -3.0, -1.0]), True, weights=_f([1, 0, 1]))
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(task.auc.result()) == pytest.approx(1.0)


def test_esmm_weights_leave_retrieval_only_rows_out():
    loss = EsmmTask(name="purchase")(
        _f([1, 0, 1]), _f([0.5, 0.8, 0.9]), _f([0.2, 0.5, 0.9]), weights=_f([1, 1, 0])
    )
    assert float(loss) == pytest.approx(-(math.log(0.1) + math.log(0.6)) / 2, rel=1e-5)


def test_masked_mse_is_mean_over_unmasked_rows_and_ignores_masked_labels():
    task = MaskedRegressionTask(name="dwell")
    labels = _f([1.0, float("nan"), 3.0, 0.5])
    predictions = _f([0.5, 9.0, 2.0, 0.0])
    loss = task(labels, predictions, _f([1, 0, 1, 1]))
    assert float(loss) == pytest.approx((0.5**2 + 1.0**2 + 0.5**2) / 3, rel=1e-6)
    assert float(task(labels, predictions, _f([0, 0, 0, 0]))) == 0.0


def test_esmm_ctcvr_loss_on_the_product_of_probabilities():
    loss = EsmmTask(name="purchase")(_f([1, 0]), _f([0.5, 0.8]), _f([0.2, 0.5]))
    # p = [0.1, 0.4]: BCE = -(log 0.1 + log 0.6) / 2
    assert float(loss) == pytest.approx(-(math.log(0.1) + math.log(0.6)) / 2, rel=1e-5)


def test_retrieval_softmax_with_logq_correction_and_row_weights():
    task = RetrievalTask(name="retrieval")
    query = _f([[1.0, 0.0], [0.0, 1.0]])
    candidate = _f([[1.0, 0.0], [1.0, 1.0]])
    log_q = tf.math.log(_f([0.5, 0.25]))
    ids = tf.constant([7, 8], tf.int64)
    # scores [[1, 1], [0, 1]] minus log q per candidate column.
    s = [[1 - math.log(0.5), 1 - math.log(0.25)], [0 - math.log(0.5), 1 - math.log(0.25)]]
    row0 = math.log(math.exp(s[0][0]) + math.exp(s[0][1])) - s[0][0]
    row1 = math.log(math.exp(s[1][0]) + math.exp(s[1][1])) - s[1][1]
    both = task(query, candidate, weights=_f([1, 1]), candidate_ids=ids, log_q=log_q)
    first = task(query, candidate, weights=_f([1, 0]), candidate_ids=ids, log_q=log_q)
    assert float(both) == pytest.approx((row0 + row1) / 2, rel=1e-5)
    assert float(first) == pytest.approx(row0, rel=1e-5)
    assert float(task(query, candidate, weights=_f([0, 0]), candidate_ids=ids)) == 0.0


def test_retrieval_removes_accidental_hits():
    task = RetrievalTask(name="retrieval")
    query = _f([[1.0, 0.0], [0.0, 1.0]])
    candidate = _f([[1.0, 0.0], [0.0, 3.0]])
    # Both rows show the same item: the other row is not a negative, the loss is 0.
    loss = task(query, candidate, weights=_f([1, 1]), candidate_ids=tf.constant([5, 5], tf.int64))
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_fixed_weighting_is_weighted_sum_and_checks_names():
    weighting = FixedWeighting({"click": 1.0, "dwell": 0.5})
    assert float(weighting({"click": _f(2.0), "dwell": _f(0.5)})) == pytest.approx(2.25)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['clik'\].*\['click', 'dwell'\]"):
        weighting({"clik": _f(1.0)})


def test_uncertainty_weighting_hand_computed():
    weighting = UncertaintyWeighting(("click", "dwell"))
    losses = {"click": _f(2.0), "dwell": _f(0.5)}
    assert float(weighting(losses)) == pytest.approx(2.5)  # s = 0: plain sum
    weighting.log_variances["dwell"].assign(math.log(2.0))
    expected = 2.0 + math.exp(-math.log(2.0)) * 0.5 + math.log(2.0) / 2
    assert float(weighting(losses)) == pytest.approx(expected, rel=1e-6)
    assert weighting.current_weights() == pytest.approx({"click": 1.0, "dwell": 0.5})


def test_uncertainty_weighting_learns_larger_weight_for_smaller_loss():
    weighting = UncertaintyWeighting(("a", "b"))
    optimizer = tf.keras.optimizers.SGD(0.1)
    for _ in range(200):
        with tf.GradientTape() as tape:
            total = weighting({"a": _f(4.0), "b": _f(0.25)})
        grads = tape.gradient(total, weighting.trainable_variables)
        optimizer.apply_gradients(zip(grads, weighting.trainable_variables, strict=True))
    # Optimum s_t = log(2 L_t): weights 1 / (2 L_t).
    assert weighting.current_weights() == pytest.approx({"a": 1 / 8, "b": 2.0}, rel=1e-3)


def test_validate_tasks_names_valid_parents():
    tasks = (
        TaskConfig(name="click", kind="binary", label="click"),
        TaskConfig(name="purchase", kind="binary", label="purchase", esmm_parent="clicks"),
    )
    with pytest.raises(ValueError, match=r"esmm_parent: 'clicks'.*valid: \['click'\]"):
        validate_tasks(tasks)
    with pytest.raises(ValueError, match=r"duplicate task name\(s\) \['click'\]"):
        validate_tasks((tasks[0], tasks[0]))
