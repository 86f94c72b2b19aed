"""Task layers: each `call` returns the task's scalar loss (and updates its metrics).

Built on the TFRS task layers: retrieval on `tfrs.tasks.Retrieval` (in-batch softmax with
the logQ sampling correction and accidental-hit removal), ranking heads on
`tfrs.tasks.Ranking`. Keras sums the losses (only explicit reductions work under every
tf.distribute strategy) and the layers divide: plain means over the batch, masked means over
the rows where the label is defined.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.config import TaskConfig

_SUM = tf.keras.losses.Reduction.SUM


def _column(values: tf.Tensor) -> tf.Tensor:
    """[B] -> [B, 1] float32: Keras losses average over the last axis."""
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1])


def _mean_over(total: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted sum -> weighted mean; 0 when no row counts (e.g. no click in the batch)."""
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(weights, tf.float32)))


def _weighted_mean_loss(
    task: tfrs.tasks.Ranking,
    labels: tf.Tensor,
    predictions: tf.Tensor,
    weights: tf.Tensor | None,
    compute_metrics: bool,
) -> tf.Tensor:
    """The ranking task's loss averaged over the rows by weight (its metrics weigh alike);
    no weights weigh every row 1."""
    if weights is None:
        weights = tf.ones_like(predictions)
    total = task(
        _column(labels),
        _column(predictions),
        sample_weight=_column(weights),
        compute_metrics=compute_metrics,
    )
    return _mean_over(total, weights)


class RetrievalTask(tf.keras.layers.Layer):
    """Two-tower in-batch softmax; row weights pick the positive pairs (e.g. clicks)."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.task = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=_SUM),
            remove_accidental_hits=True,
        )

    def call(
        self,
        query: tf.Tensor,
        candidate: tf.Tensor,
        *,
        weights: tf.Tensor,
        candidate_ids: tf.Tensor,
        log_q: tf.Tensor | None = None,
        topk: tfrs.metrics.FactorizedTopK | None = None,
    ) -> tf.Tensor:
        """Mean softmax loss over weighted rows; `topk` (evaluation only) is updated too."""
        weights = tf.cast(weights, tf.float32)
        total = self.task(
            query,
            candidate,
            sample_weight=weights,
            candidate_sampling_probability=None if log_q is None else tf.exp(log_q),
            candidate_ids=candidate_ids,
            compute_metrics=False,
            compute_batch_metrics=False,
        )
        if topk is None:
            return _mean_over(total, weights)
        update = topk.update_state(
            query, candidate, true_candidate_ids=candidate_ids, sample_weight=weights
        )
        with tf.control_dependencies([update]):
            return _mean_over(total, weights)


class BinaryTask(tf.keras.layers.Layer):
    """Binary cross-entropy on the head's logit, AUC as metric."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.auc = tf.keras.metrics.AUC(from_logits=True, name="auc")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=_SUM),
            metrics=[self.auc],
        )

    def call(
        self,
        labels: tf.Tensor,
        logits: tf.Tensor,
        compute_metrics: bool = False,
        weights: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Mean BCE over the rows; `weights` (0/1) leaves rows out (e.g. retrieval-only)."""
        return _weighted_mean_loss(self.task, labels, logits, weights, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.auc]


class EsmmTask(tf.keras.layers.Layer):
    """ESMM CTCVR loss: BCE(label, p_parent * p_cond) on every impression (Ma et al. 2018)."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.auc = tf.keras.metrics.AUC(name="auc")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=False, reduction=_SUM),
            metrics=[self.auc],
        )

    def call(
        self,
        labels: tf.Tensor,
        parent_probability: tf.Tensor,
        conditional_probability: tf.Tensor,
        compute_metrics: bool = False,
        weights: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Mean CTCVR BCE over the rows; `weights` (0/1) leaves rows out."""
        joint = _column(parent_probability) * _column(conditional_probability)
        return _weighted_mean_loss(self.task, labels, joint, weights, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.auc]


class MaskedRegressionTask(tf.keras.layers.Layer):
    """MSE over the rows whose mask is 1 (e.g. clicks with a dwell time); RMSE as metric."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.rmse = tf.keras.metrics.RootMeanSquaredError(name="rmse")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(reduction=_SUM), metrics=[self.rmse]
        )

    def call(
        self,
        labels: tf.Tensor,
        predictions: tf.Tensor,
        mask: tf.Tensor,
        compute_metrics: bool = False,
    ) -> tf.Tensor:
        # Masked labels may be NaN or arbitrary: zero them so they cannot leak through 0 * NaN.
        mask = tf.cast(mask, tf.float32)
        labels = tf.where(mask > 0, tf.cast(labels, tf.float32), tf.zeros_like(mask))
        return _weighted_mean_loss(self.task, labels, predictions, mask, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.rmse]


def validate_tasks(tasks: tuple[TaskConfig, ...]) -> None:
    """Checks names and references between tasks.

    Raises:
      ValueError: no task, duplicate names, more than one retrieval task, or an
        `esmm_parent` that is not another plain binary task (the message lists valid names).
    """
    if not tasks:
        raise ValueError("tasks: at least one task is needed")
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"tasks: duplicate task name(s) {duplicates}; names must be unique")
    if sum(t.kind == "retrieval" for t in tasks) > 1:
        raise ValueError("tasks: at most one retrieval task is supported")
    parents = [t.name for t in tasks if t.kind == "binary" and t.esmm_parent is None]
    for task in tasks:
        if task.esmm_parent is not None and (
            task.esmm_parent == task.name or task.esmm_parent not in parents
        ):
            raise ValueError(
                f"tasks.{task.name}.esmm_parent: {task.esmm_parent!r} is not a binary task "
                f"without a parent; valid: {parents}"
            )


def build_task(task: TaskConfig) -> tf.keras.layers.Layer:
    """The loss layer for one configured task."""
    if task.kind == "retrieval":
        return RetrievalTask(name=f"{task.name}_task")
    if task.kind == "binary":
        if task.esmm_parent is not None:
            return EsmmTask(name=f"{task.name}_task")
        return BinaryTask(name=f"{task.name}_task")
    return MaskedRegressionTask(name=f"{task.name}_task")
