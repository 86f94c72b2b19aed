"""Loss weighting: the only place task losses are combined (SPEC §7).

`fixed`: sum_t w_t * L_t with weights from config. `uncertainty` (Kendall, Gal & Cipolla,
CVPR 2018): sum_t exp(-s_t) * L_t + s_t / 2 with s_t = log sigma_t^2 learned, initialised
to 0 (weight 1).
"""

from __future__ import annotations

import tensorflow as tf


def _check_names(losses: dict[str, tf.Tensor], known: tuple[str, ...]) -> None:
    unknown = sorted(set(losses) - set(known))
    if unknown:
        raise ValueError(
            f"loss weighting: unknown task(s) {unknown}; declared tasks: {list(known)}"
        )


class FixedWeighting(tf.keras.layers.Layer):
    """sum_t w_t * L_t."""

    def __init__(self, weights: dict[str, float], *, name: str = "weighting") -> None:
        super().__init__(name=name)
        self.task_weights = dict(weights)
        self.task_names = tuple(weights)

    def call(self, losses: dict[str, tf.Tensor]) -> tf.Tensor:
        _check_names(losses, self.task_names)
        return tf.add_n([self.task_weights[t] * loss for t, loss in losses.items()])

    def current_weights(self) -> dict[str, float]:
        return dict(self.task_weights)

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        del task_name
        return []


class UncertaintyWeighting(tf.keras.layers.Layer):
    """sum_t exp(-s_t) * L_t + s_t / 2, one trainable s_t per task (init 0)."""

    def __init__(self, task_names: tuple[str, ...], *, name: str = "weighting") -> None:
        super().__init__(name=name)
        self.task_names = tuple(task_names)
        self.log_variances = {
            task: self.add_weight(name=f"log_variance_{task}", shape=(), initializer="zeros")
            for task in self.task_names
        }

    def call(self, losses: dict[str, tf.Tensor]) -> tf.Tensor:
        _check_names(losses, self.task_names)
        terms = []
        for task, loss in losses.items():
            s = self.log_variances[task]
            terms.append(tf.exp(-s) * loss + 0.5 * s)
        return tf.add_n(terms)

    def current_weights(self) -> dict[str, float]:
        """exp(-s_t): the multiplier each task loss currently gets."""
        return {t: float(tf.exp(-s).numpy()) for t, s in self.log_variances.items()}

    def task_variables(self, task_name: str) -> list[tf.Variable]:
        return [self.log_variances[task_name]]


def build_weighting(kind: str, weights: dict[str, float]) -> tf.keras.layers.Layer:
    """The weighting named by `model.weighting` over the tasks (name -> fixed weight)."""
    if kind == "fixed":
        return FixedWeighting(weights)
    if kind == "uncertainty":
        return UncertaintyWeighting(tuple(weights))
    raise ValueError(f"model.weighting: unknown {kind!r}; valid: ['fixed', 'uncertainty']")
