"""Cross-stitch sharing: per-task columns mixed by learned, near-identity cross-stitch units."""

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.models.sharing.cross_stitch import CrossStitch

TASKS = ("click", "purchase", "dwell")


def test_starts_near_identity_and_mixes_the_tasks_columns():
    block = CrossStitch(TASKS, (8, 4))
    x = tf.random.stateless_normal([5, 6], seed=[1, 2])
    out = block(x)
    assert set(out) == set(TASKS) and all(v.shape == (5, 4) for v in out.values())
    for stitch in block.stitches:
        alphas = np.stack([stitch.alphas[t].numpy() for t in TASKS])
        np.testing.assert_allclose(np.diag(alphas), 0.9)
        np.testing.assert_allclose(alphas.sum(axis=1), 1.0, rtol=1e-6)
    # With alpha = identity every column is its own task's MLP alone.
    for stitch in block.stitches:
        for i, t in enumerate(TASKS):
            stitch.alphas[t].assign(np.eye(len(TASKS))[i])
    separate = block(x)
    for t in TASKS:
        h = x
        for layer in block.columns[t]:
            h = layer(h)
        np.testing.assert_allclose(separate[t].numpy(), h.numpy(), rtol=1e-5)
    assert not np.allclose(separate["click"].numpy(), separate["dwell"].numpy())


def test_task_variables_are_the_tasks_column_and_alpha_rows():
    block = CrossStitch(TASKS, (8, 4))
    block(tf.zeros([2, 6]))
    own = {t: {v.ref() for v in block.task_variables(t)} for t in TASKS}
    assert len(own["click"]) == 2 * 2 + 2  # 2 layers x (kernel, bias) + 1 alpha row per unit
    assert not own["click"] & own["dwell"] and not own["click"] & own["purchase"]
    every = {v.ref() for v in block.trainable_variables}
    assert set().union(*own.values()) == every


def test_one_task_is_a_plain_mlp_column():
    block = CrossStitch(("rating",), (4,))
    block(tf.zeros([2, 3]))
    np.testing.assert_array_equal(block.stitches[0].alphas["rating"].numpy(), [1.0])


def test_needs_a_layer():
    with pytest.raises(ValueError, match="bottom_units"):
        CrossStitch(TASKS, ())
