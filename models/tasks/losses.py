"""What the task kinds' loss layers share: Keras sums, the layers divide.

Only explicit reductions work under every tf.distribute strategy, so the TFRS task layers
sum their losses and the kind's layer divides: plain means over the batch, masked means over
the rows where the label is defined.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

SUM = tf.keras.losses.Reduction.SUM


def column(values: tf.Tensor) -> tf.Tensor:
    """[B] -> [B, 1] float32: Keras losses average over the last axis."""
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1])


def mean_over(total: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted sum -> weighted mean; 0 when no row counts (e.g. no click in the batch)."""
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(weights, tf.float32)))


def weighted_mean_loss(
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
        column(labels),
        column(predictions),
        sample_weight=column(weights),
        compute_metrics=compute_metrics,
    )
    return mean_over(total, weights)
