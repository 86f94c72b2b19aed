"""Two linear regression tasks on a shared input: joint and alternating training recover them.

y1 = 0.1 x1 + 0.2 x2 + 0.3 and y2 = 0.5 x1 + 0.9 x2 + 3.0, learned through the project's
shared bottom (linear), task heads (linear), masked-MSE task layers, fixed weighting and
training steps (`mtlrec.models.optim.TrainStep`, `TaskSampler`).
"""

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.models.config import TaskConfig, TrainingConfig
from mtlrec.models.heads import TaskHead
from mtlrec.models.memory_input import Columns, column_batches, row_batches
from mtlrec.models.optim import TaskSampler, TrainStep, make_optimizer
from mtlrec.models.sharing import SharedBottom
from mtlrec.models.tasks.regression import MaskedRegressionTask
from mtlrec.models.weighting import FixedWeighting

TRUTH = {"y1": (0.1, 0.2, 0.3), "y2": (0.5, 0.9, 3.0)}
TASKS = tuple(TaskConfig(name=n, kind="regression", label=n) for n in TRUTH)


class LinearTwoTask(tf.keras.Model):
    """The model protocol TrainStep needs, wired from the project's blocks with linear layers."""

    def __init__(self) -> None:
        super().__init__()
        names = tuple(TRUTH)
        self.sharing = SharedBottom(names, (4,), activation=None)
        self.heads = {n: TaskHead((), activation=None, name=f"{n}_head") for n in names}
        self.task_layers = {n: MaskedRegressionTask(name=n) for n in names}
        self.weighting = FixedWeighting(dict.fromkeys(names, 1.0))
        self.id_embedding_tables = []

    def task_losses(self, batch, names=None, *, training=False):
        shared = self.sharing(batch["x"], training=training)
        names = names or tuple(TRUTH)
        ones = tf.ones_like(batch[names[0]])
        return {
            n: self.task_layers[n](batch[n], self.heads[n](shared[n]), ones, training)
            for n in names
        }

    def variables_for_task(self, name):
        others = {
            v.ref() for n, h in self.heads.items() if n != name for v in h.trainable_variables
        }
        return [v for v in self.trainable_variables if v.ref() not in others]

    def coefficients(self, name):
        """(a1, a2, b) of the learned linear map x -> y."""
        points = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        y = self.heads[name](self.sharing(points)[name]).numpy()
        return (y[1] - y[0], y[2] - y[0], y[0])


def _dataset(steps: int):
    x = np.random.default_rng(0).normal(size=(4096, 2)).astype("float32")
    columns = {"x": x}
    for name, (a1, a2, b) in TRUTH.items():
        columns[name] = (a1 * x[:, 0] + a2 * x[:, 1] + b).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(columns).shuffle(4096, seed=1).repeat()
    return data.batch(64).take(steps)


@pytest.mark.parametrize("mode,steps", [("joint", 1500), ("alternating", 3000)])
def test_two_linear_tasks_recover_coefficients(mode, steps):
    tf.keras.utils.set_random_seed(3)
    model = LinearTwoTask()
    model.task_losses(next(iter(_dataset(1))))
    cfg = TrainingConfig(learning_rate=0.02, lr_schedule="cosine", clipnorm=None)
    optimizer = make_optimizer(cfg, steps)
    optimizer.build(model.trainable_variables)
    step = TrainStep(model, optimizer, tf.distribute.get_strategy())
    sampler = TaskSampler(TASKS, seed=0)
    drawn = []
    for batch in _dataset(steps):
        if mode == "joint":
            step.joint(batch)
        else:
            drawn.append(sampler.draw())
            step.task(drawn[-1], batch)
    for name, truth in TRUTH.items():
        np.testing.assert_allclose(model.coefficients(name), truth, atol=0.005, err_msg=name)
    if mode == "alternating":
        assert 0.45 < drawn.count("y1") / len(drawn) < 0.55


def test_task_sampler_follows_probabilities_and_seed():
    tasks = (
        TaskConfig(name="a", kind="regression", label="a", sample_probability=3.0),
        TaskConfig(name="b", kind="regression", label="b", sample_probability=1.0),
    )
    sampler = TaskSampler(tasks, seed=5)
    draws = [sampler.draw() for _ in range(2000)]
    assert 0.72 < draws.count("a") / 2000 < 0.78
    again = TaskSampler(tasks, seed=5)
    assert [again.draw() for _ in range(2000)] == draws


def _fresh(prepare=None) -> tuple[LinearTwoTask, TrainStep]:
    """A seeded LinearTwoTask and its TrainStep (Adam, lr 0.02, 10 steps planned)."""
    tf.keras.utils.set_random_seed(3)
    model = LinearTwoTask()
    model.task_losses(next(iter(_dataset(1))))
    optimizer = make_optimizer(TrainingConfig(learning_rate=0.02, clipnorm=None), 10)
    optimizer.build(model.trainable_variables)
    return model, TrainStep(model, optimizer, tf.distribute.get_strategy(), prepare=prepare)


def _trained(mode: str, steps_in_one_call: bool):
    """A fresh LinearTwoTask after 10 steps, one call per step or one call for all."""
    model, step = _fresh()
    task = None if mode == "joint" else "y2"
    names = tuple(TRUTH) if task is None else (task,)
    if steps_in_one_call:
        result = step.run_steps(iter(_dataset(10)), 16, task)
        return model, result.loss_sums, result.steps, result.rows
    sums = dict.fromkeys(names, 0.0)
    for batch in _dataset(10):
        losses, _ = step.joint(batch) if task is None else step.task(task, batch)
        sums = {n: sums[n] + float(losses[n]) for n in names}
    return model, sums, 10, 640


@pytest.mark.parametrize("mode", ["joint", "alternating"])
def test_steps_in_one_call_equal_single_steps(mode):
    one_call, sums, steps, rows = _trained(mode, steps_in_one_call=True)
    single, expected_sums, _, _ = _trained(mode, steps_in_one_call=False)
    # The iterator held 10 batches of 64: the call stops there although 16 were asked for.
    assert (steps, rows) == (10, 640)
    for name, value in expected_sums.items():
        np.testing.assert_allclose(sums[name], value, rtol=1e-5, err_msg=name)
    for got, want in zip(one_call.trainable_variables, single.trainable_variables, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, err_msg=got.name)


def test_row_indices_gathered_in_the_step_train_as_the_gathered_features():
    columns = Columns.of(next(iter(_dataset(1).unbatch().batch(4096))), nbytes=0)
    gathered, step = _fresh(prepare=columns.gather_rows)
    result = step.run_steps(iter(row_batches(64, 16, shuffle=True, seed=5)), 10)
    losses, _ = step.joint(next(iter(row_batches(64, 16, shuffle=False, seed=0))))
    direct, step = _fresh()
    expected = step.run_steps(iter(column_batches(columns, 16, shuffle=True, seed=5)), 10)
    expected_losses, _ = step.joint(next(iter(column_batches(columns, 16, shuffle=False, seed=0))))
    assert (result.steps, result.rows) == (4, 64)  # row indices count as rows
    assert result.loss_sums == pytest.approx(expected.loss_sums, rel=1e-6)
    for name, value in expected_losses.items():
        np.testing.assert_allclose(losses[name], value, rtol=1e-6, err_msg=name)
    for got, want in zip(gathered.trainable_variables, direct.trainable_variables, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, err_msg=got.name)
