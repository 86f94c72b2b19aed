"""Multi-gate mixture of experts (Ma et al., KDD 2018): shared experts, one gate per task."""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import mlp


class ExpertMixture(tf.keras.layers.Layer):
    """Softmax-gated sum of expert outputs; the gate reads `gate_input`."""

    def __init__(self, num_experts: int, *, name: str) -> None:
        super().__init__(name=name)
        self.gate = tf.keras.layers.Dense(num_experts, activation="softmax", name="gate")

    def call(self, gate_input: tf.Tensor, experts: tf.Tensor) -> tf.Tensor:
        """experts: [B, num_experts, d] -> [B, d]."""
        weights = self.gate(gate_input)
        return tf.einsum("be,bed->bd", weights, experts)


class MMoE(tf.keras.layers.Layer):
    """`num_experts` shared expert MLPs mixed by one softmax gate per task."""

    def __init__(
        self,
        task_names: tuple[str, ...],
        num_experts: int,
        expert_units: tuple[int, ...],
        *,
        dropout: float = 0.0,
        l2: float = 0.0,
        name: str = "mmoe",
    ) -> None:
        super().__init__(name=name)
        if not expert_units:
            raise ValueError("model.expert_units must name at least one layer width for mmoe")
        self.task_names = tuple(task_names)
        self.experts = [
            mlp(expert_units, dropout=dropout, l2=l2, name=f"expert_{i}")
            for i in range(num_experts)
        ]
        self.mixtures = {
            task: ExpertMixture(num_experts, name=f"gate_{task}") for task in self.task_names
        }

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        experts = tf.stack([e(inputs, training=training) for e in self.experts], axis=1)
        return {task: self.mixtures[task](inputs, experts) for task in self.task_names}

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        """The gate of `task_name` (the experts are shared)."""
        return list(self.mixtures[task_name].trainable_variables)
