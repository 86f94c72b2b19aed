"""Model structure: shared embeddings, sharing blocks, predictions, save/load, alternating steps."""

import numpy as np
import pytest
import tensorflow as tf

from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TrainingConfig
from mtlrec.models.model import build_model, load_model, save_model
from mtlrec.models.optim import TrainStep, make_optimizer

VOCAB = {
    "user_id": 20,
    "item_id": 30,
    "device": 3,
    "country": 4,
    "age_bucket": 5,
    "category": 6,
    "brand": 7,
}
FEATURE_SET = feature_set(FeaturesConfig(), ("click", "purchase", "dwell"))


def _batch(rows: int = 16, seed: int = 0) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    batch = {
        name: tf.constant(rng.integers(0, 3, rows), tf.int64)
        for name in ("device", "country", "age_bucket", "category", "brand", "hour", "weekday")
    }
    click = (np.arange(rows) % 2).astype("float32")
    batch.update(
        user_id=tf.constant(rng.integers(0, 20, rows), tf.int64),
        item_id=tf.constant(np.arange(rows) % 30, tf.int64),
        position=tf.constant(rng.integers(0, 5, rows), tf.int64),
        price=tf.constant(rng.normal(size=rows), tf.float32),
        click=tf.constant(click),
        purchase=tf.constant(click * (np.arange(rows) % 4 == 1)),
        dwell=tf.constant(rng.normal(size=rows), tf.float32),
        dwell_mask=tf.constant(click),
        item_log_q=tf.fill([rows], float(np.log(1 / 30))),
    )
    return batch


def _model(sharing: str = "shared_bottom", **overrides):
    cfg = ModelConfig(sharing=sharing, **overrides)
    return build_model(FEATURE_SET, DEFAULT_TASKS, cfg, VOCAB, serving_position=0)


def test_every_task_reads_the_same_user_and_item_embedding_variables():
    model = _model("mmoe")
    user = [v for v in model.trainable_variables if "user_id_embedding" in v.name]
    item = [v for v in model.trainable_variables if "item_id_embedding" in v.name]
    assert len(user) == 1 and len(item) == 1
    assert user[0].shape == (20 + 10, 32)  # vocabulary + id_oov_buckets rows
    for task in ("retrieval", "click", "purchase", "dwell"):
        with tf.GradientTape() as tape:
            model.task_losses(_batch(), (task,))
        watched = tape.watched_variables()
        assert any(v is user[0] for v in watched), task
        assert any(v is item[0] for v in watched), task


@pytest.mark.parametrize("sharing", ["shared_bottom", "mmoe", "ple", "cross_stitch"])
def test_predictions_per_task(sharing):
    model = _model(sharing)
    batch = _batch()
    out = model.predict_tasks(batch)
    assert set(out) == {"retrieval", "click", "purchase", "dwell"}
    assert all(v.shape == (16,) for v in out.values())
    click, purchase = out["click"].numpy(), out["purchase"].numpy()
    assert np.all((click > 0) & (click < 1))
    assert np.all(purchase < click)  # ESMM: p_click * p_purchase|click
    dot = tf.reduce_sum(model.query_embedding(batch) * model.candidate_embedding(batch), axis=1)
    np.testing.assert_allclose(out["retrieval"].numpy(), dot.numpy(), rtol=1e-6)


def test_missing_position_means_serving_position():
    model = _model()
    bias = model.heads["click"].position_bias
    bias.embeddings.assign(tf.reshape(tf.range(21, dtype=tf.float32), [21, 1]))
    batch = _batch()
    without = dict(batch)
    del without["position"]
    at_serving = {**batch, "position": tf.zeros([16], tf.int64)}
    at_three = {**batch, "position": tf.fill([16], tf.constant(3, tf.int64))}
    np.testing.assert_array_equal(
        model.predict_tasks(without)["click"].numpy(), model.predict_tasks(at_serving)["click"]
    )
    assert np.all(model.predict_tasks(at_three)["click"] > model.predict_tasks(at_serving)["click"])
    # Position is a click-propensity term: it does not enter the dwell head.
    np.testing.assert_array_equal(
        model.predict_tasks(at_three)["dwell"].numpy(), model.predict_tasks(without)["dwell"]
    )


def test_ple_and_mmoe_name_their_task_specific_variables():
    ple = _model("ple", num_experts=2, task_experts=1, ple_levels=2)
    own = {v.ref() for v in ple.sharing.task_variables("click")}
    assert own and not own & {v.ref() for v in ple.sharing.task_variables("dwell")}
    # click's own experts + gate in 2 CGC layers: 2 layers x (expert kernel+bias, gate kernel+bias)
    assert len(own) == 2 * (2 + 2)
    mmoe = _model("mmoe")
    assert len(mmoe.sharing.task_variables("dwell")) == 2  # the gate's kernel and bias


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


@pytest.mark.parametrize("sharing", ["mmoe", "ple", "cross_stitch"])
def test_alternating_step_leaves_other_heads_bit_identical(sharing):
    model = _model(sharing)
    optimizer = make_optimizer(TrainingConfig(learning_rate=0.05), 100)
    optimizer.build(model.trainable_variables)
    step = TrainStep(model, optimizer, tf.distribute.get_strategy())
    for seed in range(3):  # fill Adam's moments for every variable first
        step.joint(_batch(seed=seed))
    heads = {t: model.own_variables(t) for t in ("click", "purchase", "dwell")}
    before = {t: _snapshot(v) for t, v in heads.items()}
    user_table = model.query_tower.embeddings["user_id"].embeddings
    user_before = user_table.numpy().copy()

    losses, _ = step.task("dwell", _batch(seed=9))
    assert set(losses) == {"dwell"}
    for task in ("click", "purchase"):
        for old, var in zip(before[task], heads[task], strict=True):
            np.testing.assert_array_equal(old, var.numpy(), err_msg=f"{task}: {var.name}")
    changed = [
        not np.array_equal(o, v.numpy())
        for o, v in zip(before["dwell"], heads["dwell"], strict=True)
    ]
    assert all(changed)
    assert not np.array_equal(user_before, user_table.numpy())

    # ESMM: a purchase step leaves the click head alone although its loss goes through it.
    click_before = _snapshot(heads["click"])
    step.task("purchase", _batch(seed=10))
    for old, var in zip(click_before, heads["click"], strict=True):
        np.testing.assert_array_equal(old, var.numpy())


@pytest.mark.parametrize(
    "overrides",
    [
        {"sharing": "ple"},
        {"sharing": "cross_stitch"},
        {"cross_layers": 2, "head_dot": True, "id_bias": True, "l2_dense": 0.01},
        {"retrieval_item_bias": True},
    ],
    ids=["ple", "cross_stitch", "interactions", "retrieval_item_bias"],
)
def test_save_load_predicts_identically(tmp_path, overrides):
    model = _model(**overrides)
    optimizer = make_optimizer(TrainingConfig(learning_rate=0.05), 10)
    optimizer.build(model.trainable_variables)
    step = TrainStep(model, optimizer, tf.distribute.get_strategy())
    for seed in range(3):
        step.joint(_batch(seed=seed))
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model", None)
    batch = _batch(seed=5)
    expected, got = model.predict_tasks(batch), loaded.predict_tasks(batch)
    for task in expected:
        np.testing.assert_array_equal(expected[task].numpy(), got[task].numpy(), err_msg=task)
    fresh = _model(**overrides).predict_tasks(batch)
    assert not np.allclose(fresh["click"].numpy(), got["click"].numpy())


def test_load_model_without_spec_says_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="model_spec.json not found"):
        load_model(tmp_path, None)


def test_tower_reports_missing_feature():
    model = _model()
    batch = _batch()
    del batch["brand"]
    with pytest.raises(ValueError, match=r"lacks feature\(s\) \['brand'\]"):
        model.candidate_embedding(batch)


def test_cross_layers_cross_the_pair_representation():
    model = _model(cross_layers=2)
    assert len(model.cross) == 2
    batch = _batch()
    query, candidate = model.query_embedding(batch), model.candidate_embedding(batch)
    pair = tf.concat([query, candidate, query * candidate], axis=1)
    crossed = model.pair_representation(query, candidate)
    assert crossed.shape == pair.shape
    # x_{l+1} = x0 * (W x_l + b) + x_l: with W = 0 and b = 0 the layers pass the pair through.
    np.testing.assert_allclose(_model().pair_representation(query, candidate), pair)
    for layer in model.cross:
        for v in layer.trainable_variables:
            v.assign(tf.zeros_like(v))
    np.testing.assert_allclose(model.pair_representation(query, candidate), pair, rtol=1e-6)
    with tf.GradientTape() as tape:
        loss = model.task_losses(batch, ("click",))["click"]
    kernels = [layer.trainable_variables[0] for layer in model.cross]
    assert all(g is not None for g in tape.gradient(loss, kernels))


def test_head_dot_feeds_the_towers_dot_product_to_every_head():
    plain, with_dot = _model(), _model(head_dot=True)
    for name in ("click", "purchase", "dwell"):
        width = plain.heads[name].hidden.layers[0].kernel.shape[0]
        assert with_dot.heads[name].hidden.layers[0].kernel.shape[0] == width + 1
    # The dot product reaches the ranking loss through the heads, not only through retrieval.
    batch = _batch()
    head = with_dot.heads["dwell"].hidden.layers[0].kernel
    with tf.GradientTape() as tape:
        loss = with_dot.task_losses(batch, ("dwell",))["dwell"]
    assert np.any(tape.gradient(loss, head).numpy()[-1] != 0.0)


def test_id_bias_adds_a_learned_prior_per_user_and_item():
    model = _model(id_bias=True)
    head = model.heads["click"]
    assert set(head.id_biases) == {"user_id", "item_id"}
    assert head.id_biases["item_id"].embeddings.shape == (30 + 10, 1)  # vocabulary + oov rows
    assert not np.any(head.id_biases["user_id"].embeddings.numpy())  # starts at the global prior
    tables = {v.ref() for v in model.id_embedding_tables}
    assert all(t.ref() in tables for h in model.heads.values() for t in h.id_bias_tables)
    batch = _batch()
    before = model.predict_tasks(batch)
    head.id_biases["item_id"].embeddings.assign(
        tf.tensor_scatter_nd_update(tf.zeros([40, 1]), [[3]], [[2.0]])
    )
    after = model.predict_tasks(batch)
    item3 = batch["item_id"].numpy() == 3
    assert item3.any()
    assert np.all(after["click"].numpy()[item3] > before["click"].numpy()[item3])
    np.testing.assert_array_equal(after["click"].numpy()[~item3], before["click"].numpy()[~item3])
    np.testing.assert_array_equal(after["dwell"].numpy(), before["dwell"].numpy())  # its own bias


def test_retrieval_item_bias_adds_b_item_to_the_two_tower_score():
    model = _model(retrieval_item_bias=True)
    batch = _batch()
    query, candidate = model.query_embedding(batch), model.candidate_embedding(batch)
    assert query.shape[1] == candidate.shape[1] == ModelConfig().embedding_dim + 1
    np.testing.assert_array_equal(query.numpy()[:, -1], 1.0)
    table = model.candidate_tower.bias_table
    assert table.embeddings.shape == (30 + 10, 1)  # item vocabulary + oov rows
    before = model.predict_tasks(batch)["retrieval"].numpy()
    table.embeddings.assign(tf.tensor_scatter_nd_update(tf.zeros([40, 1]), [[3]], [[2.5]]))
    after = model.predict_tasks(batch)["retrieval"].numpy()
    item3 = batch["item_id"].numpy() == 3
    assert item3.any()
    np.testing.assert_allclose(after[item3] - before[item3], 2.5, rtol=1e-5)
    np.testing.assert_array_equal(after[~item3], before[~item3])


def test_l2_dense_penalises_every_dense_kernel_in_the_train_step():
    assert _model().losses == []
    model = _model(l2_dense=0.1)
    kernels = [
        v for v in model.trainable_variables if v.name.endswith("kernel:0") and "gate" not in v.name
    ]
    # towers (hidden + projection) x 2, shared bottom, heads (hidden + logit) x 3
    assert len(kernels) == 2 * 2 + 1 + 3 * 2 == len(model.losses)
    expected = 0.1 * sum(float(tf.reduce_sum(tf.square(k))) for k in kernels)
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-5)
    optimizer = make_optimizer(TrainingConfig(), 10)
    optimizer.build(model.trainable_variables)
    penalty = float(tf.add_n(model.losses))
    batch = _batch()
    weighted = float(model.weighting(model.task_losses(batch, training=True)))
    _, total = TrainStep(model, optimizer, tf.distribute.get_strategy()).joint(batch)
    np.testing.assert_allclose(float(total), weighted + penalty, rtol=1e-5)
