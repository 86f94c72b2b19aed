"""The multi-layer perceptron every block is made of (towers, experts, heads)."""

from __future__ import annotations

import tensorflow as tf


def dense_regularizer(l2: float) -> tf.keras.regularizers.Regularizer | None:
    """L2 on a dense kernel (`model.l2_dense`), or None at 0: a zero penalty adds no loss term."""
    return tf.keras.regularizers.L2(l2) if l2 > 0.0 else None


def mlp(
    units: tuple[int, ...],
    *,
    dropout: float = 0.0,
    activation: str | None = "relu",
    l2: float = 0.0,
    name: str | None = None,
) -> tf.keras.Sequential:
    """Dense layers of the given widths, each followed by dropout when `dropout` > 0.

    An empty `units` gives the identity, so a block can be made linear or pass-through by
    configuration rather than by a special case. `l2` > 0 puts an L2 penalty on every kernel
    (collected in the model's `losses`, added by the train step).
    """
    layers: list[tf.keras.layers.Layer] = []
    for width in units:
        layers.append(
            tf.keras.layers.Dense(
                width, activation=activation, kernel_regularizer=dense_regularizer(l2)
            )
        )
        if dropout > 0.0:
            layers.append(tf.keras.layers.Dropout(dropout))
    return tf.keras.Sequential(layers, name=name)
