"""Binary ranking tasks (click-like): BCE on the head's logit, AUC, GAUC and calibration."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.features.declarations import CLICK, LABELS, RANKING_MASK
from mtlrec.models import offline_metrics
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import losses
from mtlrec.models.tasks.base import TaskInputs, TaskKind


class BinaryTask(tf.keras.layers.Layer):
    """Binary cross-entropy on the head's logit, AUC as metric."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.auc = tf.keras.metrics.AUC(from_logits=True, name="auc")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction=losses.SUM),
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
        return losses.weighted_mean_loss(self.task, labels, logits, weights, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.auc]


def ranking_rows(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """`rows` without the retrieval-only rows (`RANKING_MASK` 0: orphan clicks)."""
    if RANKING_MASK in columns:
        return rows & (columns[RANKING_MASK] > 0)
    return rows


def binary_metrics(labels, scores, users, bins: int) -> tuple[dict, dict]:
    """auc, gauc, logloss, ece, calibration_ratio and their row counts; None without rows."""
    keys = ("auc", "gauc", "logloss", "ece", "calibration_ratio")
    if labels.size == 0:
        return dict.fromkeys(keys), {"rows": 0}
    group = offline_metrics.gauc(users, labels, scores)
    metrics = {
        "auc": offline_metrics.auc(labels, scores),
        "gauc": group.value,
        "logloss": offline_metrics.logloss(labels, scores),
        "ece": offline_metrics.ece(labels, scores, bins),
        "calibration_ratio": offline_metrics.calibration_ratio(labels, scores),
    }
    counts = {
        "rows": int(labels.size),
        "positives": int((labels > 0.5).sum()),
        "gauc_users": group.users,
        "gauc_skipped_users": group.skipped_users,
    }
    return metrics, counts


class Binary(TaskKind):
    """A click-like task: its head's logit through a sigmoid; position-biased in training."""

    name = "binary"
    position_bias = True
    probability = True
    may_be_parent = True
    with_parent = "esmm"
    metric_directions = {"auc": True, "gauc": True, "logloss": False, "ece": False}

    def build_layer(self, task: TaskConfig) -> tf.keras.layers.Layer:
        return BinaryTask(name=f"{task.name}_task")

    def loss(self, layer, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return layer(
            inputs.features[task.label],
            inputs.heads[task.name],
            inputs.compute_metrics,
            weights=inputs.ranking,
        )

    def predict(self, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return tf.sigmoid(inputs.heads[task.name])

    def output_name(self, task: TaskConfig) -> str:
        return f"p_{task.name}"

    def primary_metric(self, task: TaskConfig, ks: tuple[int, ...]) -> str:
        return "auc"

    def offline_metrics(self, task, columns, predictions, rows, *, ece_bins):
        """Binary metrics; a label other than click also gets `auc_on_clicks` (the same rows
        restricted to clicked impressions) when the data has a click label."""
        rows = ranking_rows(columns, rows)
        y = columns[LABELS[task.label].name]
        metrics, counts = binary_metrics(
            y[rows], predictions[rows], columns["user_key"][rows], ece_bins
        )
        if task.label != CLICK and CLICK in columns:
            clicked = rows & (columns[CLICK] > 0)
            on_clicks = y[clicked]
            metrics["auc_on_clicks"] = (
                offline_metrics.auc(on_clicks, predictions[clicked]) if on_clicks.size else None
            )
            counts["rows_on_clicks"] = int(on_clicks.size)
        return metrics, counts


KIND = Binary()
