"""Optimizers, learning-rate schedules and the training steps (joint and alternating).

A step works on any model exposing `task_losses(batch, names, training=True)`, a
`weighting` layer, `trainable_variables`, `variables_for_task(name)` and
`id_embedding_tables` (the L2-regularised tables). A step on one task applies gradients
to that task's variables and the shared ones only: optimizers with momentum or Adam
state would otherwise move other tasks' weights even with a zero gradient.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.config import TaskConfig, TrainingConfig


def make_schedule(cfg: TrainingConfig, total_steps: int):
    """Constant, cosine (to 0) or exponential (to 10 %) decay over `total_steps`."""
    steps = max(total_steps, 1)
    if cfg.lr_schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps)
    if cfg.lr_schedule == "exponential":
        return tf.keras.optimizers.schedules.ExponentialDecay(
            cfg.learning_rate, decay_steps=steps, decay_rate=0.1
        )
    return cfg.learning_rate


def make_optimizer(cfg: TrainingConfig, total_steps: int) -> tf.keras.optimizers.Optimizer:
    """The configured optimizer with global-norm clipping; call in `strategy.scope()`."""
    lr = make_schedule(cfg, total_steps)
    clip = {"global_clipnorm": cfg.clipnorm} if cfg.clipnorm is not None else {}
    if cfg.optimizer == "adam":
        return tf.keras.optimizers.Adam(lr, **clip)
    if cfg.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(lr, **clip)
    return tf.keras.optimizers.SGD(lr, momentum=cfg.momentum, **clip)


class TaskSampler:
    """Draws the task of each alternating step with the configured probabilities.

    The generator is a `tf.random.Generator`, a trackable object: checkpointing it makes a
    resumed run draw the same tasks as an uninterrupted one.
    """

    def __init__(self, tasks: tuple[TaskConfig, ...], seed: int) -> None:
        self.names = tuple(t.name for t in tasks)
        weights = np.array([t.sample_probability for t in tasks], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.generator = tf.random.Generator.from_seed(seed)

    def draw(self) -> str:
        u = float(self.generator.uniform([], dtype=tf.float64).numpy())
        index = min(int(np.searchsorted(self.cumulative, u, side="right")), len(self.names) - 1)
        return self.names[index]


class TrainStep:
    """Compiled optimizer steps: `joint(batch)` on the weighted sum, `task(name, batch)` on one.

    Each replica's loss is divided by the number of replicas: gradients are summed across
    replicas, so the step follows the global mean loss.
    """

    def __init__(
        self,
        model,
        optimizer: tf.keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        *,
        l2_embedding: float = 0.0,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.l2_embedding = l2_embedding
        self._compiled: dict[str | None, tf.types.experimental.GenericFunction] = {}

    def _replica_step(self, batch, names, variables):
        with tf.GradientTape() as tape:
            losses = self.model.task_losses(batch, names, training=True)
            total = self.model.weighting(losses)
            if self.l2_embedding > 0.0:
                tables = self.model.id_embedding_tables
                total += self.l2_embedding * tf.add_n([tf.reduce_sum(tf.square(t)) for t in tables])
            scaled = total / self.strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, variables)
        # Variables the loss does not reach (None) are left out so no optimizer state moves them.
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        )
        return losses, total

    def _function(self, task: str | None):
        if task not in self._compiled:
            names = None if task is None else (task,)
            variables = (
                self.model.trainable_variables
                if task is None
                else self.model.variables_for_task(task)
            )

            @tf.function(reduce_retracing=True)
            def step(batch):
                losses, total = self.strategy.run(
                    self._replica_step, args=(batch, names, variables)
                )
                mean = tf.distribute.ReduceOp.MEAN
                reduced = {k: self.strategy.reduce(mean, v, axis=None) for k, v in losses.items()}
                return reduced, self.strategy.reduce(mean, total, axis=None)

            self._compiled[task] = step
        return self._compiled[task]

    def joint(self, batch) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """One step on the weighted sum of every task's loss -> (task losses, total loss)."""
        return self._function(None)(batch)

    def task(self, name: str, batch) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """One step on task `name` alone (alternating training) -> ({name: loss}, total)."""
        return self._function(name)(batch)
