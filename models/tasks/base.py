"""What every task kind answers: the model, the export and evaluation ask it, never the name.

A kind owns its loss layer (a Keras layer whose `call` returns the scalar loss), whether it
has a ranking head, how its prediction and served output are formed, its offline metrics and
their directions, and the rules its task config must follow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.models.config import TaskConfig


@dataclasses.dataclass(frozen=True)
class TaskInputs:
    """What a task's loss and prediction read from one batch.

    Attributes:
      features: the transformed batch (labels, masks and `RANKING_MASK` included).
      query, candidate: [B, d] tower outputs.
      heads: head output of every ranking task needed (logit, or prediction for regression).
      ranking: 0/1 per row, 0 for retrieval-only rows (orphan clicks); None = every row ranks.
      compute_metrics: update the layer's Keras metrics too.
      topk: retrieval's top-K metric over the catalogue (evaluation only).
    """

    features: Mapping[str, tf.Tensor]
    query: tf.Tensor
    candidate: tf.Tensor
    heads: Mapping[str, tf.Tensor]
    ranking: tf.Tensor | None = None
    compute_metrics: bool = False
    topk: tfrs.metrics.FactorizedTopK | None = None


class TaskKind:
    """One kind of task; subclasses live one per module and register in `registry`."""

    name: ClassVar[str]
    takes_label: ClassVar[bool] = True
    has_head: ClassVar[bool] = True
    position_bias: ClassVar[bool] = False
    """The head adds a learned per-position logit bias (clicks depend on the slot shown)."""
    ranks_catalogue: ClassVar[bool] = False
    """Scores every catalogue item for a user (retrieval): at most one such task."""
    probability: ClassVar[bool] = False
    """The prediction is a probability: ROC and calibration curves apply."""
    may_be_parent: ClassVar[bool] = False
    """Another task's `esmm_parent` may name a task of this kind."""
    takes_parent: ClassVar[bool] = False
    """The task's prediction is conditioned on its `esmm_parent` task's."""
    with_parent: ClassVar[str | None] = None
    """Registered kind that serves this kind's tasks when they name an `esmm_parent`."""
    metric_directions: ClassVar[Mapping[str, bool]] = {}
    """Offline metric name prefix -> whether higher is better."""

    def validate(self, task: TaskConfig, kinds: Mapping[str, TaskKind]) -> None:
        """Raises ValueError naming the task when its config breaks this kind's rules;
        `kinds` holds the kind of every task by name."""
        if not self.takes_label and task.label is not None:
            raise ValueError(f"task {task.name!r}: {task.kind} takes no label; remove 'label'")
        if self.takes_label and task.label is None:
            raise ValueError(f"task {task.name!r}: kind {task.kind} needs a 'label'")
        if task.esmm_parent is not None and not self.takes_parent:
            raise ValueError(f"task {task.name!r}: esmm_parent applies to binary tasks only")

    def heads_read(self, task: TaskConfig) -> tuple[str, ...]:
        """Ranking heads this task's loss and prediction read."""
        return (task.name,) if self.has_head else ()

    def build_layer(self, task: TaskConfig) -> tf.keras.layers.Layer:
        raise NotImplementedError

    def loss(self, layer: tf.keras.layers.Layer, task: TaskConfig, inputs: TaskInputs):
        """The task's scalar loss on the batch."""
        raise NotImplementedError

    def predict(self, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        """[B] prediction in the model's space (a probability, a label-space value, a score)."""
        raise NotImplementedError

    def output_name(self, task: TaskConfig) -> str | None:
        """Name of the task's output in the serving signatures; None = not served."""
        return None

    def served(self, task: TaskConfig, prediction: tf.Tensor) -> tf.Tensor:
        """The prediction as served (in the label's original units)."""
        return prediction

    def primary_metric(self, task: TaskConfig, ks: tuple[int, ...]) -> str:
        """The offline metric the blessing gate holds against the baselines."""
        raise NotImplementedError

    def alone(self, task: TaskConfig) -> TaskConfig:
        """The task as trained by itself (its single-task baseline)."""
        return task

    def offline_metrics(
        self,
        task: TaskConfig,
        columns: Mapping[str, np.ndarray],
        predictions: np.ndarray,
        rows: np.ndarray,
        *,
        ece_bins: int,
    ) -> tuple[dict, dict]:
        """(metrics, counts) of a ranking task on the eval rows where `rows` is True."""
        raise NotImplementedError(f"{self.name} tasks are not scored row by row")
