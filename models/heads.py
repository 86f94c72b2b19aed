"""A ranking task's own tower (head): MLP -> one logit, plus the position bias term."""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import mlp


class TaskHead(tf.keras.layers.Layer):
    """Per-task MLP to a scalar logit/prediction.

    With `num_positions`, a shallow position tower (one scalar per slot, initialised to
    zero) is added to the logit: the head learns click propensity by slot in training, and
    serving fixes the slot (`serving_position`) so rankings carry no position bias.
    """

    def __init__(
        self,
        units: tuple[int, ...],
        *,
        dropout: float = 0.0,
        activation: str | None = "relu",
        num_positions: int | None = None,
        name: str,
    ) -> None:
        super().__init__(name=name)
        self.hidden = mlp(units, dropout=dropout, activation=activation, name="hidden")
        self.output_layer = tf.keras.layers.Dense(1, name="logit")
        self.num_positions = num_positions
        self.position_bias = (
            tf.keras.layers.Embedding(
                num_positions, 1, embeddings_initializer="zeros", name="position_bias"
            )
            if num_positions
            else None
        )

    def call(
        self, inputs: tf.Tensor, position: tf.Tensor | None = None, training: bool = False
    ) -> tf.Tensor:
        """[B, d] (and [B] int positions) -> [B] logit."""
        logit = tf.squeeze(self.output_layer(self.hidden(inputs, training=training)), axis=1)
        if self.position_bias is None:
            return logit
        slot = tf.clip_by_value(
            tf.reshape(tf.cast(position, tf.int64), [-1]), 0, self.num_positions - 1
        )
        return logit + tf.squeeze(self.position_bias(slot), axis=1)
