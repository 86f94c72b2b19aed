"""ESMM conversion tasks (Ma et al. 2018): p(purchase) = p(click) * p(purchase | click).

The task's head learns the conditional; its loss is the CTCVR BCE on every impression, so
the conditional is trained over the whole impression space, not only on clicked rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import losses
from mtlrec.models.tasks.base import TaskInputs, TaskKind
from mtlrec.models.tasks.binary import Binary


class EsmmTask(tf.keras.layers.Layer):
    """ESMM CTCVR loss: BCE(label, p_parent * p_cond) on every impression (Ma et al. 2018)."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.auc = tf.keras.metrics.AUC(name="auc")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=False, reduction=losses.SUM),
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
        joint = losses.column(parent_probability) * losses.column(conditional_probability)
        return losses.weighted_mean_loss(self.task, labels, joint, weights, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.auc]


class ESMM(Binary):
    """A binary task conditioned on its `esmm_parent`; no position bias of its own (the
    parent's click probability already carries it)."""

    name = "esmm"
    position_bias = False
    may_be_parent = False
    takes_parent = True
    with_parent = None

    def validate(self, task: TaskConfig, kinds: Mapping[str, TaskKind]) -> None:
        super().validate(task, kinds)
        parents = [name for name, kind in kinds.items() if name != task.name and kind.may_be_parent]
        if task.esmm_parent not in parents:
            raise ValueError(
                f"tasks.{task.name}.esmm_parent: {task.esmm_parent!r} is not a binary task "
                f"without a parent; valid: {parents}"
            )

    def heads_read(self, task: TaskConfig) -> tuple[str, ...]:
        return (task.name, task.esmm_parent)

    def build_layer(self, task: TaskConfig) -> tf.keras.layers.Layer:
        return EsmmTask(name=f"{task.name}_task")

    def loss(self, layer, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return layer(
            inputs.features[task.label],
            tf.sigmoid(inputs.heads[task.esmm_parent]),
            tf.sigmoid(inputs.heads[task.name]),
            compute_metrics=inputs.compute_metrics,
            weights=inputs.ranking,
        )

    def predict(self, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return tf.sigmoid(inputs.heads[task.esmm_parent]) * tf.sigmoid(inputs.heads[task.name])

    def alone(self, task: TaskConfig) -> TaskConfig:
        """Trained alone, the task has no parent: a plain binary task on its own label."""
        return task.model_copy(update={"esmm_parent": None})


KIND = ESMM()
