"""Regression tasks (dwell time, rating): masked MSE on the head's output, RMSE and MAE."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.features.declarations import LABELS
from mtlrec.models import offline_metrics
from mtlrec.models.config import TaskConfig
from mtlrec.models.tasks import losses
from mtlrec.models.tasks.base import TaskInputs, TaskKind
from mtlrec.models.tasks.binary import ranking_rows


class MaskedRegressionTask(tf.keras.layers.Layer):
    """MSE over the rows whose mask is 1 (e.g. clicks with a dwell time); RMSE as metric."""

    def __init__(self, *, name: str) -> None:
        super().__init__(name=name)
        self.rmse = tf.keras.metrics.RootMeanSquaredError(name="rmse")
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(reduction=losses.SUM), metrics=[self.rmse]
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
        return losses.weighted_mean_loss(self.task, labels, predictions, mask, compute_metrics)

    @property
    def task_metrics(self) -> list[tf.keras.metrics.Metric]:
        return [self.rmse]


def regression_keys(label_name: str) -> tuple[str, str]:
    """(rmse, mae) metric keys; `_s` suffixed when the label is in seconds."""
    suffix = "_s" if LABELS[label_name].source.endswith("_s") else ""
    return f"rmse{suffix}", f"mae{suffix}"


def regression_metrics(label_name: str, targets, predictions) -> tuple[dict, dict]:
    """RMSE and MAE in the label's original units (expm1 of log1p labels and predictions,
    predictions floored at 0 since the unit is non-negative); None without rows."""
    rmse_key, mae_key = regression_keys(label_name)
    if targets.size == 0:
        return {rmse_key: None, mae_key: None}, {"rows": 0}
    if LABELS[label_name].log1p:
        targets = np.expm1(targets)
        predictions = np.maximum(np.expm1(predictions), 0.0)
    metrics = {
        rmse_key: offline_metrics.rmse(targets, predictions),
        mae_key: offline_metrics.mae(targets, predictions),
    }
    return metrics, {"rows": int(targets.size)}


class Regression(TaskKind):
    """A real-valued label learned where its mask is 1, served in its original units."""

    name = "regression"
    metric_directions = {"rmse": False, "mae": False}

    def build_layer(self, task: TaskConfig) -> tf.keras.layers.Layer:
        return MaskedRegressionTask(name=f"{task.name}_task")

    def loss(self, layer, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        prediction = inputs.heads[task.name]
        mask_name = LABELS[task.label].mask
        mask = inputs.features[mask_name] if mask_name else tf.ones_like(prediction)
        if inputs.ranking is not None:
            mask = tf.cast(mask, tf.float32) * tf.cast(inputs.ranking, tf.float32)
        return layer(inputs.features[task.label], prediction, mask, inputs.compute_metrics)

    def predict(self, task: TaskConfig, inputs: TaskInputs) -> tf.Tensor:
        return inputs.heads[task.name]

    def output_name(self, task: TaskConfig) -> str:
        return LABELS[task.label].source

    def primary_metric(self, task: TaskConfig, ks: tuple[int, ...]) -> str:
        return regression_keys(task.label)[0]

    def served(self, task: TaskConfig, prediction: tf.Tensor) -> tf.Tensor:
        return tf.math.expm1(prediction) if LABELS[task.label].log1p else prediction

    def offline_metrics(self, task, columns, predictions, rows, *, ece_bins):
        label = LABELS[task.label]
        rows = ranking_rows(columns, rows)
        defined = rows if label.mask is None else rows & (columns[label.mask] > 0)
        return regression_metrics(label.name, columns[label.name][defined], predictions[defined])


KIND = Regression()
