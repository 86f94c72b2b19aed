"""Shared bottom: one MLP whose output every ranking head reads (Caruana 1997)."""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import mlp


class SharedBottom(tf.keras.layers.Layer):
    """One MLP shared by all tasks; every task gets the same representation."""

    def __init__(
        self,
        task_names: tuple[str, ...],
        units: tuple[int, ...],
        *,
        dropout: float = 0.0,
        activation: str | None = "relu",
        l2: float = 0.0,
        name: str = "shared_bottom",
    ) -> None:
        super().__init__(name=name)
        self.task_names = tuple(task_names)
        self.bottom = mlp(units, dropout=dropout, activation=activation, l2=l2, name="bottom")

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        shared = self.bottom(inputs, training=training)
        return dict.fromkeys(self.task_names, shared)

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        """Variables only `task_name` uses: none, everything here is shared."""
        del task_name
        return []
