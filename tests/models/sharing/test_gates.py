"""MMoE and PLE gates learn different expert mixtures for tasks that need different experts."""

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.models.sharing.mmoe import MMoE
from mtlrec.models.sharing.ple import PLE

TASKS = ("a", "b")


def _data(rows: int = 512, seed: int = 0) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Two tasks on disjoint halves of the input: a reads x[:, :4], b reads x[:, 4:]."""
    x = np.random.default_rng(seed).normal(size=(rows, 8)).astype("float32")
    targets = {
        "a": x[:, 0] * x[:, 1] + np.abs(x[:, 2]),
        "b": np.sin(2.0 * x[:, 5]) - x[:, 6] * x[:, 7],
    }
    return tf.constant(x), {t: tf.constant(v[:, None]) for t, v in targets.items()}


def _gates(block) -> dict[str, tf.keras.layers.Layer]:
    """The first layer's gate of each task (they read the block's input)."""
    if isinstance(block, MMoE):
        return {t: block.mixtures[t].gate for t in TASKS}
    return {t: block.levels[0].task_gates[t].gate for t in TASKS}


def _mixture_distance(block, x: tf.Tensor) -> float:
    """Mean total-variation distance between the two tasks' gate softmax outputs."""
    gates = _gates(block)
    return float(tf.reduce_mean(0.5 * tf.reduce_sum(tf.abs(gates["a"](x) - gates["b"](x)), 1)))


@pytest.mark.parametrize(
    "block",
    [
        lambda: MMoE(TASKS, num_experts=4, expert_units=(16,)),
        lambda: PLE(TASKS, levels=2, num_shared=2, num_task_experts=1, expert_units=(16,)),
    ],
    ids=["mmoe", "ple"],
)
def test_gates_mix_experts_differently_per_task_after_training(block):
    tf.keras.utils.set_random_seed(0)
    block = block()
    heads = {t: tf.keras.layers.Dense(1) for t in TASKS}
    x, y = _data()
    block(x)
    for t in TASKS:
        heads[t](block(x)[t])
    # Every gate starts uniform (zero kernel and bias): whatever differs is learned.
    for gate in _gates(block).values():
        for variable in gate.trainable_variables:
            variable.assign(tf.zeros_like(variable))
    assert _mixture_distance(block, x) == 0.0
    variables = block.trainable_variables + [v for h in heads.values() for v in h.variables]
    optimizer = tf.keras.optimizers.Adam(0.02)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out = block(x, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(heads[t](out[t]) - y[t])) for t in TASKS])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    for _ in range(150):
        step()
    # Measured 0.46 (mmoe) and 0.42 (ple); identical gates would stay at 0.
    assert _mixture_distance(block, _data(seed=1)[0]) > 0.2
