"""The retrieval task: two-tower in-batch softmax over the shared user and item towers.

Built on `tfrs.tasks.Retrieval` (in-batch softmax with the logQ sampling correction and
accidental-hit removal); scored offline by recall, NDCG and hit rate over the whole catalogue.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.features.declarations import CLICK, ITEM_LOG_Q
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import losses
from mtlrec.models.tasks.base import TaskInputs, TaskKind


class RetrievalTask(tf.keras.layers.Layer):
    """Two-tower in-batch softmax; row weights pick the positive pairs (e.g. clicks)."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.task = tfrs.tasks.Retrieval(
            loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction=losses.SUM),
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
            return losses.mean_over(total, weights)
        update = topk.update_state(
            query, candidate, true_candidate_ids=candidate_ids, sample_weight=weights
        )
        with tf.control_dependencies([update]):
            return losses.mean_over(total, weights)


def positive_weights(task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
    """1 for the rows that are positive (user, item) pairs: clicks, or every row."""
    if not task.retrieval_on_clicks:
        return tf.ones([tf.shape(inputs.query)[0]], tf.float32)
    if CLICK not in inputs.features:
        raise ValueError(
            f"task {task.name!r}: retrieval_on_clicks needs the 'click' label in the input; "
            "set retrieval_on_clicks: false for data without clicks"
        )
    return tf.cast(inputs.features[CLICK], tf.float32)


class Retrieval(TaskKind):
    """Scores every catalogue item for a user by dot(query, candidate); no ranking head."""

    name = "retrieval"
    takes_label = False
    has_head = False
    ranks_catalogue = True
    metric_directions = {"recall@": True, "ndcg@": True, "hitrate@": True}

    def build_layer(self, task: TaskConfig) -> tf.keras.layers.Layer:
        return RetrievalTask(name=f"{task.name}_task")

    def loss(self, layer, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return layer(
            inputs.query,
            inputs.candidate,
            weights=positive_weights(task, inputs),
            candidate_ids=inputs.features["item_id"],
            log_q=inputs.features.get(ITEM_LOG_Q),
            topk=inputs.topk,
        )

    def predict(self, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return tf.reduce_sum(inputs.query * inputs.candidate, axis=1)

    def primary_metric(self, task: TaskConfig, ks: tuple[int, ...]) -> str:
        return f"recall@{max(ks)}"


KIND = Retrieval()
