"""The multi-layer perceptron every block is made of (towers, experts, heads)."""

from __future__ import annotations

import tensorflow as tf


def mlp(
    units: tuple[int, ...],
    *,
    dropout: float = 0.0,
    activation: str | None = "relu",
    name: str | None = None,
) -> tf.keras.Sequential:
    """Dense layers of the given widths, each followed by dropout when `dropout` > 0.

    An empty `units` gives the identity, so a block can be made linear or pass-through by
    configuration rather than by a special case.
    """
    layers: list[tf.keras.layers.Layer] = []
    for width in units:
        layers.append(tf.keras.layers.Dense(width, activation=activation))
        if dropout > 0.0:
            layers.append(tf.keras.layers.Dropout(dropout))
    return tf.keras.Sequential(layers, name=name)
