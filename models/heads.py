"""A ranking task's own tower (head): MLP -> one logit, plus the position and id bias terms."""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import dense_regularizer, mlp


class TaskHead(tf.keras.layers.Layer):
    """Per-task MLP to a scalar logit/prediction.

    With `num_positions`, a shallow position tower (one scalar per slot, initialised to
    zero) is added to the logit: the head learns click propensity by slot in training, and
    serving fixes the slot (`serving_position`) so rankings carry no position bias.

    With `id_bias_rows` ({id feature: table rows}), a learned scalar per id value (per user,
    per item; initialised to zero) is added too: the head's own prior for each user and
    item, which a sparse id falls back to (its bias stays near 0, i.e. the global prior).
    """

    def __init__(
        self,
        units: tuple[int, ...],
        *,
        dropout: float = 0.0,
        activation: str | None = "relu",
        num_positions: int | None = None,
        id_bias_rows: dict[str, int] | None = None,
        l2: float = 0.0,
        name: str,
    ) -> None:
        super().__init__(name=name)
        self.hidden = mlp(units, dropout=dropout, activation=activation, l2=l2, name="hidden")
        self.output_layer = tf.keras.layers.Dense(
            1, kernel_regularizer=dense_regularizer(l2), name="logit"
        )
        self.num_positions = num_positions
        self.position_bias = (
            tf.keras.layers.Embedding(
                num_positions, 1, embeddings_initializer="zeros", name="position_bias"
            )
            if num_positions
            else None
        )
        self.id_biases = {
            feature: tf.keras.layers.Embedding(
                rows, 1, embeddings_initializer="zeros", name=f"{feature}_bias"
            )
            for feature, rows in (id_bias_rows or {}).items()
        }

    @property
    def id_bias_tables(self) -> list[tf.Variable]:
        """The per-id bias tables (built on first call)."""
        return [table.embeddings for table in self.id_biases.values()]

    def call(
        self,
        inputs: tf.Tensor,
        position: tf.Tensor | None = None,
        ids: dict[str, tf.Tensor] | None = None,
        training: bool = False,
    ) -> tf.Tensor:
        """[B, d] (and [B] int positions, {id feature: [B] ids}) -> [B] logit."""
        logit = tf.squeeze(self.output_layer(self.hidden(inputs, training=training)), axis=1)
        for feature, table in self.id_biases.items():
            logit += tf.squeeze(table(tf.reshape(ids[feature], [-1])), axis=1)
        if self.position_bias is None:
            return logit
        slot = tf.clip_by_value(
            tf.reshape(tf.cast(position, tf.int64), [-1]), 0, self.num_positions - 1
        )
        return logit + tf.squeeze(self.position_bias(slot), axis=1)
