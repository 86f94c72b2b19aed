"""Progressive layered extraction (Tang et al., RecSys 2020): stacked CGC layers.

Each customized gate control (CGC) layer has task-specific experts per task and shared
experts; a task's gate mixes its own experts with the shared ones, and (below the top
layer) a shared gate mixes all experts into the shared input of the next layer.
"""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import mlp
from mtlrec.models.sharing.mmoe import ExpertMixture


class CGC(tf.keras.layers.Layer):
    """One customized gate control layer."""

    def __init__(
        self,
        task_names: tuple[str, ...],
        num_shared: int,
        num_task_experts: int,
        expert_units: tuple[int, ...],
        *,
        with_shared_output: bool,
        dropout: float = 0.0,
        l2: float = 0.0,
        name: str,
    ) -> None:
        super().__init__(name=name)
        self.task_names = tuple(task_names)
        self.shared_experts = [
            mlp(expert_units, dropout=dropout, l2=l2, name=f"shared_expert_{i}")
            for i in range(num_shared)
        ]
        self.task_experts = {
            task: [
                mlp(expert_units, dropout=dropout, l2=l2, name=f"{task}_expert_{i}")
                for i in range(num_task_experts)
            ]
            for task in self.task_names
        }
        self.task_gates = {
            task: ExpertMixture(num_task_experts + num_shared, name=f"gate_{task}")
            for task in self.task_names
        }
        total = num_shared + num_task_experts * len(self.task_names)
        self.shared_gate = ExpertMixture(total, name="gate_shared") if with_shared_output else None

    def call(
        self, task_inputs: dict[str, tf.Tensor], shared_input: tf.Tensor, training: bool = False
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
        shared = [e(shared_input, training=training) for e in self.shared_experts]
        own = {
            task: [e(task_inputs[task], training=training) for e in self.task_experts[task]]
            for task in self.task_names
        }
        outputs = {
            task: self.task_gates[task](task_inputs[task], tf.stack(own[task] + shared, axis=1))
            for task in self.task_names
        }
        if self.shared_gate is None:
            return outputs, None
        everything = [e for task in self.task_names for e in own[task]] + shared
        return outputs, self.shared_gate(shared_input, tf.stack(everything, axis=1))

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        layers = [*self.task_experts[task_name], self.task_gates[task_name]]
        return [v for layer in layers for v in layer.trainable_variables]


class PLE(tf.keras.layers.Layer):
    """`levels` stacked CGC layers; the top one only produces the per-task outputs."""

    def __init__(
        self,
        task_names: tuple[str, ...],
        levels: int,
        num_shared: int,
        num_task_experts: int,
        expert_units: tuple[int, ...],
        *,
        dropout: float = 0.0,
        l2: float = 0.0,
        name: str = "ple",
    ) -> None:
        super().__init__(name=name)
        if not expert_units:
            raise ValueError("model.expert_units must name at least one layer width for ple")
        self.task_names = tuple(task_names)
        self.levels = [
            CGC(
                self.task_names,
                num_shared,
                num_task_experts,
                expert_units,
                with_shared_output=level < levels - 1,
                dropout=dropout,
                l2=l2,
                name=f"cgc_{level}",
            )
            for level in range(levels)
        ]

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        task_inputs = dict.fromkeys(self.task_names, inputs)
        shared: tf.Tensor | None = inputs
        for level in self.levels:
            task_inputs, shared = level(task_inputs, shared, training=training)
        return task_inputs

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        """The task's own experts and gates in every CGC layer."""
        return [v for level in self.levels for v in level.task_variables(task_name)]
