"""End to end on `mtlrec generate` data: the trained model must find the planted signal.

Bars (SPEC §7, issue 4): click AUC on the eval span >= 0.95 x the oracle AUC of the true
click probabilities (truth.json); dwell RMSE below predicting the training mean; retrieval
Recall@100 over the whole catalogue above recommending the 100 most clicked items. The
same bars hold for shared_bottom, mmoe and ple.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
DATA = {"users": 1000, "items": 200, "days": 14, "seed": 11}
# ~100k training rows: without L2 the id embeddings overfit after 2-3 epochs and click AUC
# stalls near 0.93 x oracle; L2 on the id tables and smaller batches (more steps) reach
# 0.951-0.956 x oracle (shared_bottom, mmoe, ple on this data) when selected on the test
# split. Selected on validation, six epochs gave 0.949-0.960 over runs, eight 0.960 (ple). The
# bar is on the model after the last epoch: early stopping reads the joint validation loss,
# whose retrieval term (5.8 of ~6.2) is noisy enough on 9.6 k rows to stop at epoch 3 on
# one CPU and not another.
TRAINING = {
    "epochs": 8,
    "batch_size": 256,
    "l2_embedding": 0.003,
    "early_stopping_patience": None,
}


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    from mtlrec.config import Config
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.pipeline.preprocess import run_preprocess, run_validate

    root = tmp_path_factory.mktemp("generated")
    truth = generate(root / "data", progress=False, **DATA)
    config = Config.model_validate({})
    run_validate(config.job_config(), root / "data", root / "validate", beam_args=BEAM_ARGS)
    run_preprocess(config.job_config(), root / "validate", root / "preprocess", beam_args=BEAM_ARGS)
    return root, truth


def _columns(pattern, tft_dir, names):
    from mtlrec.models.data import make_dataset

    batches = list(make_dataset(pattern, tft_dir, 8192, shuffle=False, seed=0))
    return {n: np.concatenate([b[n].numpy() for b in batches]) for n in names}


def _popularity_recall_at_100(train, evaluation) -> float:
    clicks = np.bincount(train["item_id"], weights=train["click"])
    top = np.argsort(-clicks, kind="stable")[:100]
    return float(np.isin(evaluation["item_id"][evaluation["click"] > 0], top).mean())


def test_a_split_held_in_memory_has_exactly_the_streamed_rows(preprocessed):
    from mtlrec.models.memory_input import open_split

    prep = preprocessed[0] / "preprocess"
    pattern, tft_dir = prep / "eval-*.tfrecord.gz", prep / "transform_fn"
    held = open_split(pattern, tft_dir, passthrough=True, max_bytes=2**30)
    streamed = open_split(pattern, tft_dir, passthrough=True, max_bytes=0)
    assert held.in_memory and not streamed.in_memory
    assert not open_split(pattern, tft_dir, passthrough=True, max_bytes=10_000).in_memory
    assert held.rows() == streamed.rows() > 1000

    def rows(split):
        batches = list(split.batches(1000, shuffle=False, seed=0))
        return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}

    held_rows, streamed_rows = rows(held), rows(streamed)
    assert held_rows.keys() == streamed_rows.keys()
    for name, values in streamed_rows.items():
        np.testing.assert_array_equal(held_rows[name], values, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["shared_bottom", "mmoe", "ple"])
def test_trained_model_beats_the_bars(preprocessed, tmp_path, sharing):
    from sklearn.metrics import roc_auc_score

    from mtlrec.config import Config
    from mtlrec.models.data import make_dataset
    from mtlrec.models.model import load_model
    from mtlrec.models.train import train

    root, truth = preprocessed
    config = Config.model_validate({"model": {"sharing": sharing}, "training": TRAINING})
    prep = root / "preprocess"
    tft_dir = prep / "transform_fn"
    summary = train(config.tasks, config.model, config.training, config.features, prep, tmp_path)
    assert summary["steps"] > 0 and summary["examples_per_s"] > 0
    assert summary["input"] == {"train": "memory", "validation": "memory"}
    for name in ("model/model_spec.json", "history.json", "checkpoints/latest/checkpoint"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    model = load_model(tmp_path / "model", tft_dir)
    names = ("item_id", "click", "dwell", "dwell_mask")
    train_rows = _columns(prep / "train-*.tfrecord.gz", tft_dir, names)
    eval_rows = _columns(prep / "eval-*.tfrecord.gz", tft_dir, names)
    predictions = [
        model.predict_tasks(b)
        for b in make_dataset(prep / "eval-*.tfrecord.gz", tft_dir, 8192, shuffle=False, seed=0)
    ]
    click = np.concatenate([p["click"].numpy() for p in predictions])
    dwell = np.concatenate([p["dwell"].numpy() for p in predictions])

    auc = roc_auc_score(eval_rows["click"], click)
    assert auc >= 0.95 * truth["oracle"]["click_auc_eval"], (auc, truth["oracle"])

    defined = eval_rows["dwell_mask"] > 0
    train_mean = train_rows["dwell"][train_rows["dwell_mask"] > 0].mean()
    rmse = np.sqrt(np.mean((dwell[defined] - eval_rows["dwell"][defined]) ** 2))
    baseline = np.sqrt(np.mean((train_mean - eval_rows["dwell"][defined]) ** 2))
    assert rmse < baseline, (rmse, baseline)

    recall = summary["eval"]["retrieval"]["recall@100"]
    assert recall > _popularity_recall_at_100(train_rows, eval_rows), recall
    print(
        json.dumps(
            {"sharing": sharing, "click_auc": auc, "dwell_rmse": float(rmse), "recall@100": recall}
        )
    )
    tf.keras.backend.clear_session()
