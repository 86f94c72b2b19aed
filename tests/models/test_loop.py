"""The training loop on in-memory data: history, TensorBoard, resume, early stopping, seeds."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TaskConfig, TrainingConfig
from mtlrec.models.distribute import make_strategy
from mtlrec.models.loop import fit
from mtlrec.models.metrics import evaluate
from mtlrec.models.model import build_model
from mtlrec.models.optim import make_optimizer, make_schedule

FS = feature_set(FeaturesConfig(), ("click", "purchase", "dwell"))
VOCAB = {
    "user_id": 40,
    "item_id": 30,
    "device": 3,
    "country": 4,
    "age_bucket": 5,
    "category": 6,
    "brand": 7,
}
CLICK_ONLY = (TaskConfig(name="click", kind="binary", label="click"),)


def _rows(seed: int, n: int, *, flip: bool = False) -> tf.data.Dataset:
    r = np.random.default_rng(seed)
    f = {
        k: r.integers(0, 3, n)
        for k in ("device", "country", "age_bucket", "category", "brand", "hour", "weekday")
    }
    f["position"] = r.integers(0, 5, n)
    f["user_id"], f["item_id"] = r.integers(0, 40, n), r.integers(0, 30, n)
    f["price"] = r.normal(size=n).astype("float32")
    likes = f["item_id"] < 10
    click = ((r.random(n) < 0.1 + 0.7 * likes) != flip).astype("float32")
    f.update(
        click=click,
        purchase=click * (r.random(n) < 0.3),
        dwell_mask=click,
        dwell=(2.0 + likes + 0.1 * r.normal(size=n)).astype("float32"),
        item_log_q=np.full(n, np.log(1 / 30), "float32"),
    )
    return tf.data.Dataset.from_tensor_slices(f)


def _fit(
    step_dir,
    cfg,
    tasks=DEFAULT_TASKS,
    *,
    eval_flip=False,
    model_cfg=None,
    strategy=None,
    warm_start=None,
):
    catalogue = {
        "item_id": tf.range(30, dtype=tf.int64),
        "category": tf.zeros(30, tf.int64),
        "brand": tf.zeros(30, tf.int64),
        "price": tf.zeros(30),
    }
    return fit(
        lambda: build_model(FS, tasks, model_cfg or ModelConfig(), VOCAB, serving_position=0),
        lambda epoch: _rows(1, 1000).shuffle(1000, seed=epoch).repeat().batch(50),
        lambda: _rows(2, 400, flip=eval_flip).batch(200),
        tasks,
        cfg,
        step_dir,
        steps_per_epoch=10,
        strategy=strategy or tf.distribute.get_strategy(),
        catalogue=lambda: catalogue,
        log=lambda message: None,
        warm_start=warm_start,
    )


def test_history_tensorboard_and_resume_to_more_epochs(tmp_path):
    cfg = TrainingConfig(epochs=2, learning_rate=0.01, checkpoint_every_steps=5, seed=1)
    _, first = _fit(tmp_path, cfg)
    assert first["steps"] == 20 and first["resumed_from_step"] is None
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["step"] for r in history] == [10, 20]
    record = history[-1]
    assert set(record["train_loss"]) == {"retrieval", "click", "purchase", "dwell"}
    assert record["weights"] == {"retrieval": 1.0, "click": 1.0, "purchase": 1.0, "dwell": 0.5}
    assert set(record["eval"]["retrieval"]) == {"loss", "recall@10"}  # 30 items: K <= 30 only
    assert set(record["eval"]["click"]) == {"loss", "auc"}
    assert record["eval"]["click"]["auc"] > 0.7  # the click signal is learned
    assert record["eval"]["dwell"]["rmse"] > 0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    _, second = _fit(tmp_path, cfg.model_copy(update={"epochs": 3}))
    assert second["resumed_from_step"] == 20 and second["steps"] == 30
    assert [r["epoch"] for r in json.loads((tmp_path / "history.json").read_text())] == [0, 1, 2]


def test_a_resumed_run_reports_the_warm_start_its_first_attempt_made(tmp_path):
    starts = []

    def warm_start(model):
        starts.append(model)
        return {"source": "day-1/train/model", "variables": {"copied": 3}}

    cfg = TrainingConfig(epochs=1, learning_rate=0.01, checkpoint_every_steps=5, seed=1)
    _, first = _fit(tmp_path, cfg, warm_start=warm_start)
    assert first["warm_start"] == {"source": "day-1/train/model", "variables": {"copied": 3}}
    # The retry of a killed attempt goes on from its checkpoint: no second warm start, and
    # the report still names where its weights came from.
    _, resumed = _fit(tmp_path, cfg.model_copy(update={"epochs": 2}), warm_start=warm_start)
    assert resumed["resumed_from_step"] == 10 and len(starts) == 1
    assert resumed["warm_start"] == first["warm_start"]
    _, cold = _fit(tmp_path / "cold", cfg)
    _, cold_resumed = _fit(tmp_path / "cold", cfg.model_copy(update={"epochs": 2}))
    assert cold["warm_start"] is cold_resumed["warm_start"] is None


def test_early_stopping_restores_the_best_epoch(tmp_path):
    # The eval labels are the opposite of the training labels: training soon hurts them.
    cfg = TrainingConfig(epochs=10, learning_rate=0.02, early_stopping_patience=2, seed=2)
    model, summary = _fit(tmp_path, cfg, CLICK_ONLY, eval_flip=True)
    history = json.loads((tmp_path / "history.json").read_text())
    losses = [r["eval_loss"] for r in history]
    best = int(np.argmin(losses))
    assert summary["stopped_early"] and summary["best_epoch"] == best + 1  # as the log counts
    assert len(history) == summary["epochs"] == best + 1 + 2 < 10
    restored = evaluate(model, _rows(2, 400, flip=True).batch(200))
    assert restored["click"]["loss"] == pytest.approx(losses[best], rel=1e-5)
    assert summary["eval_losses"]["click"] == history[best]["eval"]["click"]["loss"]


def test_uncertainty_weighting_logs_learned_weights(tmp_path):
    cfg = TrainingConfig(epochs=1, learning_rate=0.05, seed=3)
    model, _ = _fit(tmp_path, cfg, model_cfg=ModelConfig(weighting="uncertainty"))
    weights = json.loads((tmp_path / "history.json").read_text())[0]["weights"]
    assert weights == pytest.approx(model.weighting.current_weights())
    assert all(w != 1.0 for w in weights.values())  # s_t moved from 0


@pytest.mark.parametrize("mode", ["joint", "alternating"])
def test_seeded_runs_are_reproducible(tmp_path, mode):
    cfg = TrainingConfig(mode=mode, epochs=1, learning_rate=0.01, seed=4, optimizer="adagrad")
    first, _ = _fit(tmp_path / "a", cfg)
    second, _ = _fit(tmp_path / "b", cfg)
    batch = next(iter(_rows(3, 20).batch(20)))
    for task, value in first.predict_tasks(batch).items():
        np.testing.assert_array_equal(value.numpy(), second.predict_tasks(batch)[task].numpy())


def test_schedules_and_optimizers():
    cosine = make_schedule(TrainingConfig(learning_rate=0.1, lr_schedule="cosine"), 100)
    exponential = make_schedule(TrainingConfig(learning_rate=0.1, lr_schedule="exponential"), 100)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(100)) == pytest.approx(0.0)
    assert float(cosine(50)) == pytest.approx(0.05)
    assert float(exponential(100)) == pytest.approx(0.01)
    assert make_schedule(TrainingConfig(learning_rate=0.1), 100) == 0.1
    sgd = make_optimizer(TrainingConfig(optimizer="sgd", momentum=0.8, clipnorm=1.0), 10)
    assert isinstance(sgd, tf.keras.optimizers.SGD)
    assert sgd.momentum == 0.8 and sgd.global_clipnorm == 1.0
    assert isinstance(
        make_optimizer(TrainingConfig(optimizer="adagrad"), 10), tf.keras.optimizers.Adagrad
    )


def test_strategy_from_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("auto") is tf.distribute.get_strategy()
    assert isinstance(make_strategy("mirrored"), tf.distribute.MirroredStrategy)


def test_mirrored_strategy_trains_like_the_default_strategy(tmp_path):
    cfg = TrainingConfig(epochs=1, learning_rate=0.01, seed=5)
    mirrored, summary = _fit(tmp_path / "m", cfg, strategy=tf.distribute.MirroredStrategy())
    default, _ = _fit(tmp_path / "d", cfg)
    assert summary["steps"] == 10
    batch = next(iter(_rows(3, 20).batch(20)))
    for task, value in default.predict_tasks(batch).items():
        np.testing.assert_allclose(mirrored.predict_tasks(batch)[task].numpy(), value, atol=1e-4)
