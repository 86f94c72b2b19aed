"""Optimizers, learning-rate schedules and the training steps (joint and alternating).

A step works on any model exposing `task_losses(batch, names, training=True)`, a
`weighting` layer (its `task_names` are the losses of a joint step), `trainable_variables`, `variables_for_task(name)` and
`id_embedding_tables` (the L2-regularised tables); the layers' own regularisation losses
(`model.losses`: the dense kernels' L2 with `model.l2_dense`) are added too. A step on one task applies gradients
to that task's variables and the shared ones only: optimizers with momentum or Adam
state would otherwise move other tasks' weights even with a zero gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from mtlrec.models.config import TaskConfig, TrainingConfig


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


def _batch_rows(strategy: tf.distribute.Strategy, batch: dict) -> tf.Tensor:
    """Examples in a (distributed) batch: the leading dimension of a dense feature."""
    for value in batch.values():
        local = strategy.experimental_local_results(value)
        if all(isinstance(t, tf.Tensor) for t in local):
            return tf.add_n([tf.shape(t, out_type=tf.int64)[0] for t in local])
    raise ValueError(f"batch {sorted(batch)} has no dense feature to count its rows by")


@dataclasses.dataclass(frozen=True)
class StepsResult:
    """What `TrainStep.run_steps` did: summed loss of each task, steps and examples."""

    loss_sums: dict[str, float]
    steps: int
    rows: int


class TrainStep:
    """Compiled optimizer steps: `joint(batch)` on the weighted sum, `task(name, batch)` on one.

    Each replica's loss is divided by the number of replicas: gradients are summed across
    replicas, so the step follows the global mean loss. `prepare`, if given, turns each
    replica's batch into the features inside the compiled step (held splits gather their
    rows there: `mtlrec.models.memory_input.Split.prepare`).
    """

    def __init__(
        self,
        model,
        optimizer: tf.keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        *,
        l2_embedding: float = 0.0,
        prepare: Callable[[dict], dict] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.strategy = strategy
        self.l2_embedding = l2_embedding
        self.prepare = prepare
        self._compiled: dict[object, tf.types.experimental.GenericFunction] = {}

    def _replica_step(self, batch, names, variables):
        if self.prepare is not None:
            batch = self.prepare(batch)
        with tf.GradientTape() as tape:
            losses = self.model.task_losses(batch, names, training=True)
            total = self.model.weighting(losses)
            if self.l2_embedding > 0.0:
                tables = self.model.id_embedding_tables
                total += self.l2_embedding * tf.add_n([tf.reduce_sum(tf.square(t)) for t in tables])
            regularization = getattr(self.model, "losses", [])
            if regularization:
                total += tf.add_n(regularization)
            scaled = total / self.strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, variables)
        # Variables the loss does not reach (None) are left out so no optimizer state moves them.
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        )
        return losses, total

    def _variables(self, task: str | None) -> list[tf.Variable]:
        if task is None:
            return self.model.trainable_variables
        return self.model.variables_for_task(task)

    def _distributed_step(self, batch, names, variables):
        losses, total = self.strategy.run(self._replica_step, args=(batch, names, variables))
        mean = tf.distribute.ReduceOp.MEAN
        reduced = {k: self.strategy.reduce(mean, v, axis=None) for k, v in losses.items()}
        return reduced, self.strategy.reduce(mean, total, axis=None)

    def _function(self, task: str | None):
        if task not in self._compiled:
            names = None if task is None else (task,)
            variables = self._variables(task)

            @tf.function(reduce_retracing=True)
            def step(batch):
                return self._distributed_step(batch, names, variables)

            self._compiled[task] = step
        return self._compiled[task]

    def _steps_function(self, task: str | None):
        key = ("steps", task)
        if key not in self._compiled:
            variables = self._variables(task)
            step_names = None if task is None else (task,)
            names = self.model.weighting.task_names if task is None else step_names

            @tf.function
            def run_steps(iterator, steps):
                sums = {n: tf.constant(0.0) for n in names}
                done = tf.constant(0, tf.int64)
                rows = tf.constant(0, tf.int64)
                for _ in tf.range(steps):
                    optional = iterator.get_next_as_optional()
                    if not optional.has_value():
                        break
                    batch = optional.get_value()
                    losses, _ = self._distributed_step(batch, step_names, variables)
                    sums = {n: sums[n] + losses[n] for n in names}
                    done += 1
                    rows += _batch_rows(self.strategy, batch)
                return sums, done, rows

            self._compiled[key] = run_steps
        return self._compiled[key]

    def run_steps(self, iterator, steps: int, task: str | None = None) -> StepsResult:
        """Up to `steps` steps on the next batches of `iterator` in one compiled call.

        Like Keras' `steps_per_execution`: the loop and the reads of the input run in the
        graph, so Python is not on the path of every step. A joint step sums every task's loss;
        `task` trains that task alone (alternating training).
        Stops early when the iterator runs out.
        """
        fn = self._steps_function(task)
        sums, done, rows = fn(iterator, tf.constant(steps, tf.int32))
        return StepsResult({n: float(v) for n, v in sums.items()}, int(done), int(rows))

    def joint(self, batch) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """One step on the weighted sum of every task's loss -> (task losses, total loss)."""
        return self._function(None)(batch)

    def task(self, name: str, batch) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """One step on task `name` alone (alternating training) -> ({name: loss}, total)."""
        return self._function(name)(batch)
