"""Cross-stitch networks (Misra et al., CVPR 2016): one MLP column per task, linearly mixed.

Every task has its own column of dense layers; after each layer a cross-stitch unit
replaces task i's activation by a learned combination sum_j alpha_ij * h_j of all tasks'
activations at that layer. alpha starts near identity (alpha_ii = `self_weight`, the rest
shared equally), so training starts from separate task models and learns how much to share.
"""

from __future__ import annotations

import tensorflow as tf

from mtlrec.models.sharing.mlp import mlp


class CrossStitchUnit(tf.keras.layers.Layer):
    """Learned linear combination of the tasks' activations at one layer.

    Each task owns its row of alpha (a separate variable), so a step on one task changes
    only how that task reads the others.
    """

    def __init__(self, task_names: tuple[str, ...], *, self_weight: float, name: str) -> None:
        super().__init__(name=name)
        self.task_names = tuple(task_names)
        self.self_weight = self_weight

    def build(self, input_shape) -> None:
        count = len(self.task_names)
        other = (1.0 - self.self_weight) / (count - 1) if count > 1 else 0.0
        self_weight = self.self_weight if count > 1 else 1.0
        self.alphas = {}
        for i, task in enumerate(self.task_names):
            row = [self_weight if j == i else other for j in range(count)]
            self.alphas[task] = self.add_weight(
                name=f"alpha_{task}",
                shape=(count,),
                initializer=tf.keras.initializers.Constant(row),
                trainable=True,
            )
        super().build(input_shape)

    def call(self, activations: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        stacked = tf.stack([activations[t] for t in self.task_names], axis=1)  # [B, T, d]
        return {
            task: tf.einsum("t,btd->bd", self.alphas[task], stacked) for task in self.task_names
        }

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        return [self.alphas[task_name]]


class CrossStitch(tf.keras.layers.Layer):
    """Per-task columns of `units` dense layers with a cross-stitch unit after each layer."""

    def __init__(
        self,
        task_names: tuple[str, ...],
        units: tuple[int, ...],
        *,
        self_weight: float = 0.9,
        dropout: float = 0.0,
        l2: float = 0.0,
        name: str = "cross_stitch",
    ) -> None:
        super().__init__(name=name)
        if not units:
            raise ValueError(
                "model.bottom_units must name at least one layer width for cross_stitch"
            )
        self.task_names = tuple(task_names)
        self.columns = {
            task: [
                mlp((width,), dropout=dropout, l2=l2, name=f"{task}_layer_{depth}")
                for depth, width in enumerate(units)
            ]
            for task in self.task_names
        }
        self.stitches = [
            CrossStitchUnit(self.task_names, self_weight=self_weight, name=f"stitch_{depth}")
            for depth in range(len(units))
        ]

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        activations = dict.fromkeys(self.task_names, inputs)
        for depth, stitch in enumerate(self.stitches):
            activations = stitch(
                {
                    task: self.columns[task][depth](activations[task], training=training)
                    for task in self.task_names
                }
            )
        return activations

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        """The task's own column and its row of alpha in every cross-stitch unit."""
        own = [v for layer in self.columns[task_name] for v in layer.trainable_variables]
        return own + [v for stitch in self.stitches for v in stitch.task_variables(task_name)]
