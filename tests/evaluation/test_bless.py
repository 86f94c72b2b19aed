"""The blessing gate: thresholds, popularity, regression against the last blessed model
(re-scored or stored), and push."""

import json
import pathlib

import pytest

from mtlrec.config import Config
from mtlrec.evaluation import bless


def _config(**evaluation) -> Config:
    return Config.model_validate({"evaluation": evaluation})


GOOD = {"click": {"auc": 0.70, "logloss": 0.40}, "dwell": {"rmse_s": 20.0}}
WORSE = {"click": {"auc": 0.60, "logloss": 0.45}, "dwell": {"rmse_s": 25.0}}


def _export(tmp_path, version: str = "3"):
    dirs = {}
    for model in ("mtlrec_ranker", "mtlrec_retriever"):
        d = tmp_path / "export" / model / version
        (d / "variables").mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"graph-" + model.encode())
        (d / "variables" / "variables.index").write_bytes(b"index")
        dirs[model] = d
    return dirs


def _last(metrics, source="rescored"):
    return bless.LastBlessed("run-1", metrics, source, f"last blessed run run-1: {source}")


def test_first_model_is_judged_by_thresholds_only():
    decision = bless.decide(_config(min_metrics={"click.auc": 0.55}).evaluation, GOOD)
    assert decision["blessed"] is True
    assert decision["checks"] == [
        {
            "metric": "click.auc",
            "kind": "min",
            "value": 0.70,
            "threshold": 0.55,
            "baseline": None,
            "passed": True,
        }
    ]
    assert decision["previous_run_id"] is None
    assert decision["last_blessed"] is None


def test_record_blessed_names_the_run_and_keeps_its_metrics(tmp_path):
    bless.record_blessed(tmp_path, GOOD, "run-1")
    record = json.loads((tmp_path / "blessed.json").read_text())
    assert (record["run_id"], record["metrics"]) == ("run-1", GOOD)
    assert bless.read_blessed(tmp_path) == record
    assert bless.read_blessed(tmp_path / "empty") == {}


def test_worse_model_is_not_blessed_and_not_pushed(tmp_path):
    config = _config(min_metrics={"click.auc": 0.55}, max_regression=0.01)
    decision = bless.decide(config.evaluation, WORSE, _last(GOOD))
    assert decision["blessed"] is False
    assert decision["previous_run_id"] == "run-1"
    by_kind = {c["kind"]: c for c in decision["checks"]}
    assert by_kind["min"]["passed"] is True  # 0.60 still clears the absolute floor...
    regression = by_kind["regression"]  # ...but is 14 % below the blessed 0.70.
    assert regression["passed"] is False
    assert regression["baseline"] == 0.70
    assert regression["threshold"] == pytest.approx(0.70 * 0.99)
    assert any("FAILED" in r for r in decision["reasons"])

    serving = tmp_path / "serving"
    assert bless.push(_export(tmp_path), serving, blessed=decision["blessed"]) == {}
    assert not serving.exists()


def test_force_push_copies_an_unblessed_model(tmp_path):
    dirs = _export(tmp_path)
    pushed = bless.push(dirs, tmp_path / "serving", blessed=False, force=True)
    assert pushed == {
        name: str(tmp_path / "serving" / name / "1")
        for name in ("mtlrec_ranker", "mtlrec_retriever")
    }
    copied = tmp_path / "serving" / "mtlrec_ranker" / "1"
    assert (copied / "saved_model.pb").read_bytes() == b"graph-mtlrec_ranker"
    assert (copied / "variables" / "variables.index").read_bytes() == b"index"
    leftovers = [p.name for p in (tmp_path / "serving" / "mtlrec_ranker").iterdir()]
    assert leftovers == ["1"]  # no staging directory left behind


def test_small_regression_within_tolerance_is_blessed():
    config = _config(min_metrics={"click.auc": 0.55}, max_regression=0.01)
    slightly = {"click": {"auc": 0.695}}  # 0.7 % below: inside the 1 % tolerance
    assert bless.decide(config.evaluation, slightly, _last(GOOD))["blessed"] is True


def test_lower_is_better_metrics_regress_upwards():
    config = _config(min_metrics={}, max_metrics={"dwell.rmse_s": 30.0}, max_regression=0.1)
    worse = bless.decide(config.evaluation, WORSE, _last(GOOD))  # 25 s > 20 s * 1.1
    assert worse["blessed"] is False
    assert [c["passed"] for c in worse["checks"]] == [True, False]
    better = bless.decide(config.evaluation, {"dwell": {"rmse_s": 15.0}}, _last(GOOD))
    assert better["blessed"] is True


def test_a_rescored_last_blessed_model_that_the_candidate_regresses_from_blocks_it():
    config = _config(min_metrics={}, beat_popularity=False, max_regression=0.02)
    primary = {"click": "auc", "dwell": "rmse_s"}
    # Re-scored on today's rows the last blessed model has 0.66 AUC (its stored figure from
    # its own test split could be anything): the candidate's 0.64 is 3 % below, beyond 2 %.
    rescored = _last({"click": {"auc": 0.66}, "dwell": {"rmse_s": 20.0}})
    candidate = {"click": {"auc": 0.64}, "dwell": {"rmse_s": 20.2}}
    decision = bless.decide(config.evaluation, candidate, rescored, primary)
    assert decision["blessed"] is False
    by_metric = {c["metric"]: c for c in decision["checks"]}
    assert by_metric["click.auc"]["threshold"] == pytest.approx(0.66 * 0.98)
    assert by_metric["click.auc"]["passed"] is False
    assert by_metric["dwell.rmse_s"]["threshold"] == pytest.approx(20.4)  # 1 % up: within
    assert by_metric["dwell.rmse_s"]["passed"] is True
    assert decision["reasons"] == [
        "last blessed run run-1: rescored",
        "click.auc = 0.64, needs >= 0.6468 (last blessed 0.66 re-scored on this test split, "
        "within evaluation.max_regression): FAILED",
        "dwell.rmse_s = 20.2, needs <= 20.4 (last blessed 20 re-scored on this test split, "
        "within evaluation.max_regression): passed",
    ]
    assert decision["last_blessed"] == {
        "run_id": "run-1",
        "metrics": rescored.metrics,
        "source": "rescored",
        "reason": "last blessed run run-1: rescored",
    }
    within = {"click": {"auc": 0.65}, "dwell": {"rmse_s": 20.2}}  # 1.5 % below: blessed
    assert bless.decide(config.evaluation, within, rescored, primary)["blessed"] is True


def test_stored_figures_are_named_as_such_in_the_reasons():
    config = _config(min_metrics={"click.auc": 0.55})
    decision = bless.decide(config.evaluation, WORSE, _last(GOOD, "stored"))
    assert decision["last_blessed"]["source"] == "stored"
    assert "(last blessed 0.7 as stored in blessed.json" in decision["reasons"][2]


def test_missing_or_nan_gated_metric_fails():
    config = _config(min_metrics={"click.auc": 0.55})
    assert bless.decide(config.evaluation, {"click": {"auc": None}})["blessed"] is False
    assert bless.decide(config.evaluation, {"click": {"auc": float("nan")}})["blessed"] is False
    assert bless.decide(config.evaluation, {})["blessed"] is False


def test_each_push_publishes_the_next_serving_version_and_never_overwrites(tmp_path):
    serving = tmp_path / "serving"
    first = bless.push(_export(tmp_path), serving, blessed=True)
    other = _export(tmp_path / "other")
    (other["mtlrec_ranker"] / "saved_model.pb").write_bytes(b"different")
    second = bless.push(other, serving, blessed=True)
    assert first["mtlrec_ranker"] == str(serving / "mtlrec_ranker" / "1")
    assert second["mtlrec_ranker"] == str(serving / "mtlrec_ranker" / "2")
    assert (serving / "mtlrec_ranker" / "1" / "saved_model.pb").read_bytes() == (
        b"graph-mtlrec_ranker"
    )
    assert (serving / "mtlrec_ranker" / "2" / "saved_model.pb").read_bytes() == b"different"
    assert sorted(p.name for p in (serving / "mtlrec_ranker").iterdir()) == ["1", "2"]


def test_models_of_one_push_share_a_version_after_a_push_died_halfway(tmp_path):
    serving = tmp_path / "serving"
    bless.push(_export(tmp_path), serving, blessed=True)
    # A push that died after publishing only the ranker left it one version ahead.
    (serving / "mtlrec_ranker" / "2").mkdir()
    pushed = bless.push(_export(tmp_path / "next"), serving, blessed=True)
    assert {pathlib.Path(path).name for path in pushed.values()} == {"3"}
    assert len(pushed) > 1


def test_a_push_with_every_model_already_served_publishes_nothing(tmp_path):
    # The rerun of a push killed after publishing finds every model served and passes none.
    assert bless.push({}, tmp_path / "serving", blessed=True) == {}
    assert not (tmp_path / "serving").exists()


def test_push_rejects_a_non_version_directory(tmp_path):
    (tmp_path / "model" / "latest").mkdir(parents=True)
    with pytest.raises(ValueError, match="integer version"):
        bless.push({"m": tmp_path / "model" / "latest"}, tmp_path / "serving", blessed=True)


def test_the_model_must_beat_popularity_on_each_tasks_primary_metric():
    config = _config(min_metrics={}, primary_metrics={"dwell": "mae_s"})
    primary = bless.primary_metrics(config.tasks, config.evaluation)
    assert primary == {
        "retrieval": "recall@100",
        "click": "auc",
        "purchase": "auc",
        "dwell": "mae_s",
    }
    metrics = {
        "click": {"auc": 0.70},
        "dwell": {"mae_s": 9.0},
        "baselines": {"popularity": {"click": {"auc": 0.65}, "dwell": {"mae_s": 8.5}}},
    }
    decision = bless.decide(config.evaluation, metrics, None, primary)
    # retrieval and purchase have no popularity figure here: nothing to hold them against
    assert [(c["metric"], c["passed"]) for c in decision["checks"]] == [
        ("click.auc", True),
        ("dwell.mae_s", False),
    ]
    assert decision["reasons"] == [
        "click.auc = 0.7, needs > popularity 0.65: passed",
        "dwell.mae_s = 9, needs < popularity 8.5: FAILED",
    ]
    assert decision["blessed"] is False
    off = _config(min_metrics={}, beat_popularity=False).evaluation
    assert bless.decide(off, metrics, None, primary)["checks"] == []


def test_primary_metrics_name_configured_tasks():
    with pytest.raises(
        Exception, match=r"evaluation.primary_metrics: unknown task\(s\) \['clik'\]"
    ):
        _config(primary_metrics={"clik": "gauc"})
