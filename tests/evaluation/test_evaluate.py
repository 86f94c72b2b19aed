"""Evaluation building blocks on hand-written rows: task metrics, queries, slices, baselines."""

import math

import numpy as np
import pandas as pd
import pytest

from mtlrec.evaluation import baselines, slices, task_metrics
from mtlrec.models.config import TaskConfig

PURCHASE = TaskConfig(name="purchase", kind="binary", label="purchase", esmm_parent="click")
DWELL = TaskConfig(name="dwell", kind="regression", label="dwell")


def test_build_queries_groups_relevant_rows_by_user():
    columns = {
        "user_key": np.array(["u1", "u2", "u1", "u3", "u2"], dtype=object),
        "item_key": np.array(["a", "b", "c", "a", "q"], dtype=object),
        "event_ts": np.array([5, 1, 3, 2, 4]),
    }
    relevant = np.array([True, True, True, False, True])
    queries = task_metrics.build_queries(columns, relevant, np.array(["a", "b", "c"], object))
    # u1's earliest relevant row is row 2 (ts 3), u2's is row 1; u3 has no relevant row
    assert queries.rows.tolist() == [2, 1]
    # "q" is not in the catalogue: relevant, never retrievable (index past the end)
    assert [r.tolist() for r in queries.relevant] == [[0, 2], [1, 3]]
    assert queries.outside_catalogue == 1


def test_retrieval_metrics_keys_and_short_lists():
    ranked = np.array([[0, 1, 2], [2, 1, 0]])
    out = task_metrics.retrieval(ranked, [np.array([1]), np.array([5])], ks=(1, 10))
    assert out == {
        "recall@1": 0.0,
        "recall@10": 0.5,  # measured at the list end (3 items)
        "ndcg@1": 0.0,
        "ndcg@10": pytest.approx(0.5 / math.log2(3)),
        "hitrate@1": 0.0,
        "hitrate@10": 0.5,
    }


def test_labels_to_read_and_relevance_rule():
    from mtlrec.evaluation.evaluate import _labels

    tasks = (
        TaskConfig(name="retrieval", kind="retrieval"),
        TaskConfig(name="click", kind="binary", label="click"),
        DWELL,
    )
    available = {"click", "dwell", "dwell_mask", "user_key"}
    assert _labels(tasks, available) == (["click", "dwell", "dwell_mask"], "click")
    with_mask = available | {"ranking_mask"}
    assert _labels(tasks, with_mask) == (["click", "dwell", "dwell_mask", "ranking_mask"], "click")
    with pytest.raises(ValueError, match=r"no label column\(s\) \['dwell_mask'\]"):
        _labels(tasks, {"click", "dwell"})
    ratings = (
        TaskConfig(name="retrieval", kind="retrieval", retrieval_on_clicks=False),
        TaskConfig(name="rating", kind="regression", label="rating"),
    )
    assert _labels(ratings, {"rating"}) == (["rating"], None)
    with pytest.raises(ValueError, match="retrieval_on_clicks is true"):
        _labels(tasks[:1], {"rating"})


def test_clean_turns_nan_into_null():
    assert task_metrics.clean(
        {"a": {"b": float("nan"), "c": np.float32(0.5), "d": np.int64(3)}}
    ) == {"a": {"b": None, "c": 0.5, "d": 3}}


def test_user_activity_thresholds():
    counts = slices.impression_counts(["a"] * 60 + ["b"] * 10 + ["c"] * 4 + ["e"] * 5)
    users = np.array([b"a", b"b", b"c", b"d", b"e"], dtype=object)
    assert slices.user_activity(users, counts).tolist() == ["heavy", "warm", "cold", "cold", "warm"]


def test_item_popularity_tiers_by_volume():
    counts = slices.impression_counts(
        ["i1"] * 40 + ["i2"] * 25 + ["i3"] * 15 + ["i4"] * 10 + ["i5"] * 6 + ["i6"] * 4
    )
    # volume before each item: i1 0 % (head), i2 40 % (torso, < 50 %), i3 65 % (tail) ...
    items = ["i1", "i2", "i3", "i6", "never-shown"]
    assert slices.item_popularity(items, counts).tolist() == [
        "head",
        "torso",
        "tail",
        "tail",
        "tail",
    ]


def test_device_unknown_and_unknown_slice():
    assert slices.device([b"ios", b"", "web"]).tolist() == ["ios", "unknown", "web"]
    with pytest.raises(ValueError, match="unknown slice 'country'"):
        slices.assign(
            "country",
            users=[],
            items=None,
            devices=None,
            user_counts=pd.Series(dtype=int),
            item_counts=pd.Series(dtype=int),
        )


def test_item_rate_is_smoothed_towards_the_global_rate():
    rate = baselines.item_rate(["x", "x", "x", "y"], [1, 0, 1, 0])
    m = baselines.PRIOR_IMPRESSIONS
    assert rate.global_value == 0.5
    np.testing.assert_allclose(
        rate.predict([b"x", "y", "new"]), [(2 + m * 0.5) / (3 + m), (0 + m * 0.5) / (1 + m), 0.5]
    )


def test_item_rate_respects_the_mask():
    rate = baselines.item_rate(["x", "x", "y"], [3.0, 99.0, 1.0], mask=[1, 0, 1])
    assert rate.global_value == 2.0
    with pytest.raises(ValueError, match="no row with this label"):
        baselines.item_rate(["x"], [1.0], mask=[0])


def test_popularity_ranking_over_the_catalogue():
    catalogue = np.array(["a", "b", "c", "d"], dtype=object)
    train = [b"c", b"c", b"a", b"c", b"a", b"d", b"zz"]
    assert baselines.popularity_ranking(catalogue, train, 3).tolist() == [2, 0, 3]
    assert baselines.popularity_ranking(catalogue, train, 10).tolist() == [2, 0, 3, 1]


def test_single_task_config_drops_the_esmm_parent():
    alone = baselines.single_task_config(PURCHASE)
    assert alone.esmm_parent is None and alone.label == "purchase"
    assert baselines.single_task_config(DWELL) is DWELL


SPEC_KEYS = {
    "click": ("auc", "gauc", "logloss", "ece", "calibration_ratio"),
    "purchase": ("auc", "gauc", "logloss", "ece", "calibration_ratio"),
    "dwell": ("rmse_s", "mae_s"),
    "retrieval": ("recall@10", "recall@50", "recall@100", "ndcg@10", "ndcg@100", "hitrate@10"),
}


def _small_config(workdir, evaluation=None, **training):
    evaluation = evaluation or {}
    from mtlrec.config import Config

    return Config.model_validate(
        {
            "runner": {
                "workdir": str(workdir),
                "beam_args": [
                    "--runner=FnApiRunner",
                    "--direct_running_mode=in_memory",
                    "--direct_num_workers=1",
                ],
            },
            "training": {
                "epochs": 3,
                "batch_size": 128,
                "learning_rate": 0.01,
                "early_stopping_patience": None,
                "shuffle_buffer": 2048,
                **training,
            },
            "evaluation": {
                "min_metrics": {"click.auc": 0.55},
                "max_regression": 0.01,
                **evaluation,
            },
        }
    )


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """generate -> validate -> preprocess -> train -> evaluate, on a small synthetic log."""
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.evaluation.evaluate import run_evaluate
    from mtlrec.models.train import train
    from mtlrec.pipeline.preprocess import run_preprocess, run_validate

    root = tmp_path_factory.mktemp("e2e")
    config = _small_config(root / "work")
    generate(root / "raw", users=300, items=150, days=4, seed=3, progress=False)
    run_dir = root / "work" / "runs" / "run-good"
    run_validate(config.job_config(), root / "raw", run_dir / "validate")
    run_preprocess(config.job_config(), run_dir / "validate", run_dir / "preprocess")
    c = config
    train(c.tasks, c.model, c.training, c.features, run_dir / "preprocess", run_dir / "train")
    return config, run_dir, run_evaluate(config.evaluate_config(), run_dir)


@pytest.mark.slow
def test_metrics_json_has_every_spec_key_finite(evaluated_run):
    import json

    _, run_dir, metrics = evaluated_run
    assert json.loads((run_dir / "evaluate" / "metrics.json").read_text()) == metrics
    groups = {
        "model": metrics,
        **{f"baseline {b}": metrics["baselines"][b] for b in ("popularity", "single_task")},
    }
    for where, group in groups.items():
        for task, keys in SPEC_KEYS.items():
            for key in keys:
                value = group[task][key]
                assert isinstance(value, float) and math.isfinite(value), (where, task, key)
    assert metrics["purchase"]["auc_on_clicks"] is not None
    for slice_name in ("user_activity", "item_popularity", "device"):
        values = metrics["slices"][slice_name]
        assert sum(v["rows"] for v in values.values()) == metrics["counts"]["eval_rows"]
    assert metrics["counts"]["catalogue_items"] == 150
    # The trained model beats chance and the popularity baseline ranks better than chance too.
    assert metrics["click"]["auc"] > 0.6
    assert (run_dir / "evaluate" / "report.html").exists()
    assert "| click | auc |" in (run_dir / "evaluate" / "report.md").read_text()


@pytest.mark.slow
def test_untrained_model_is_not_blessed_and_not_pushed(evaluated_run, tmp_path):
    from mtlrec.evaluation.bless import decide, push, record_blessed
    from mtlrec.evaluation.bless_step import run_bless
    from mtlrec.evaluation.evaluate import run_evaluate
    from mtlrec.models.train import train

    config, run_dir, metrics = evaluated_run
    workdir = run_dir.parents[1]
    assert decide(config.evaluation, metrics)["blessed"] is True
    record_blessed(workdir, metrics, run_dir.name)

    untrained = _small_config(workdir, {"baselines": [], "slices": []}, epochs=0)
    worse_dir = workdir / "runs" / "run-untrained"
    worse_dir.mkdir(parents=True)
    (worse_dir / "preprocess").symlink_to(run_dir / "preprocess")
    c = untrained
    train(c.tasks, c.model, c.training, c.features, worse_dir / "preprocess", worse_dir / "train")
    worse = run_evaluate(untrained.evaluate_config(), worse_dir)
    assert worse["click"]["auc"] < metrics["click"]["auc"]
    assert "Blessing: not decided yet" in (worse_dir / "evaluate" / "report.html").read_text()

    decision = run_bless(untrained.bless_config(), worse_dir, worse)
    assert decision["blessed"] is False
    assert decision["previous_run_id"] == run_dir.name
    # Both runs share one test split: the blessed model re-scored from its raw rows through
    # its transform graph scores exactly what the evaluate step measured on its TFRecords.
    last = decision["last_blessed"]
    assert last["source"] == "rescored"
    for task in SPEC_KEYS:
        for key, value in metrics[task].items():
            assert last["metrics"][task][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    failed = [(c["metric"], c["kind"]) for c in decision["checks"] if not c["passed"]]
    assert ("click.auc", "regression") in failed
    page = (worse_dir / "evaluate" / "report.html").read_text()
    assert "<b>Blessing: NOT BLESSED</b>" in page
    assert f"last blessed {run_dir.name} (re-scored on this test split)" in page

    version = tmp_path / "export" / "mtlrec_ranker" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"model")
    serving = tmp_path / "serving"
    assert push({"mtlrec_ranker": version}, serving, blessed=decision["blessed"]) == {}
    assert not serving.exists()
