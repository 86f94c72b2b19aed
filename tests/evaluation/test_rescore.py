"""The last blessed model re-scored on the current run's test split, and its fallbacks.

The slow test runs two dated daily runs in one workdir: day 1 is blessed (the first model),
day 2's bless step re-scores day 1's model on day 2's test split. The figures must equal
day 1's exported ranker (its own tf.Transform graph inside) scored on the same raw rows
by scikit-learn and numpy, and day 2's report must open with the decision.
"""

import html
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sklearn.metrics
import tensorflow as tf

from mtlrec.config import Config, load_config
from mtlrec.evaluation import bless, rescore
from mtlrec.evaluation.stream import filled
from mtlrec.run import run

DAYS = ("2026-01-30", "2026-01-31")
UP_TO_BLESS = ("validate", "preprocess", "train", "evaluate", "bless")
SMALL = [
    "data.generate.users=200",
    "data.generate.items=100",
    "data.generate.days=5",
    "data.train_days=3",
    "data.test_days=1",
    "training.epochs=1",
    "training.batch_size=256",
    "evaluation.baselines=[popularity]",
    "evaluation.slices=[]",
    "evaluation.min_metrics={}",
    "evaluation.beat_popularity=false",
    # Position is a training-only bias the serving graph fixes; without it the exported
    # ranker predicts a logged row exactly as the evaluation does.
    "features.enabled=[user_id,item_id,device,country,age_bucket,category,brand,price,hour,"
    "weekday]",
    "runner.beam_args=[--runner=FnApiRunner,--direct_running_mode=in_memory,"
    "--direct_num_workers=1]",
]


def _config(workdir, **evaluation) -> Config:
    return Config.model_validate({"runner": {"workdir": str(workdir)}, "evaluation": evaluation})


def test_no_blessed_model_yet_means_no_comparison(tmp_path):
    assert rescore.last_blessed(_config(tmp_path).bless_config(), tmp_path / "run") is None


def test_a_blessed_run_whose_files_are_gone_falls_back_to_its_stored_figures(tmp_path):
    stored = {"click": {"auc": 0.7}, "baselines": {"popularity": {"click": {"auc": 0.6}}}}
    bless.record_blessed(tmp_path, stored, "run-old")
    last = rescore.last_blessed(_config(tmp_path).bless_config(), tmp_path / "runs" / "today")
    assert last == bless.LastBlessed(
        "run-old",
        {"click": {"auc": 0.7}},
        "stored",
        f"last blessed run run-old: its trained model is gone ({tmp_path}/runs/run-old/train/"
        "model); held against its figures stored in blessed.json (measured on its own test "
        "split)",
    )


def test_a_blessed_model_of_other_tasks_is_not_rescored(tmp_path):
    old = tmp_path / "runs" / "run-old"
    (old / "train" / "model").mkdir(parents=True)
    tasks = [{"name": "click", "kind": "binary", "label": "click"}]
    (old / "train" / "model" / "model_spec.json").write_text(json.dumps({"tasks": tasks}))
    (old / "preprocess" / "transform_fn").mkdir(parents=True)
    today = tmp_path / "runs" / "today"
    (today / "preprocess").mkdir(parents=True)
    pq.write_table(pa.table({"user_id": ["u"]}), today / "preprocess" / "eval_raw-0.parquet")
    config = _config(tmp_path).bless_config()
    assert rescore.unfit(config, old, today) == (
        "its tasks [('click', 'binary')] are not this run's [('click', 'binary'), "
        "('dwell', 'regression'), ('purchase', 'esmm'), ('retrieval', 'retrieval')]"
    )
    (today / "preprocess" / "eval_raw-0.parquet").unlink()
    assert "holds no raw test rows" in rescore.unfit(config, old, today)


def _ranker_figures(ranker_dir, raw: pa.Table) -> dict:
    """click AUC / log loss and dwell RMSE (seconds, predictions floored at 0) of the
    exported ranker on the raw rows."""
    serve = tf.saved_model.load(str(ranker_dir)).signatures["serving_default"]
    inputs = {
        name: tf.constant(filled(raw.column(name).to_pandas(), name))
        for name in serve.structured_input_signature[1]
    }
    out = {k: v.numpy().astype(np.float64) for k, v in serve(**inputs).items()}
    served_dwell = np.maximum(out["dwell_s"], 0.0)
    click = raw.column("click").to_numpy()
    has_dwell = raw.column("has_dwell").to_numpy() > 0
    dwell = raw.column("dwell_s").to_numpy(zero_copy_only=False)[has_dwell]
    return {
        "click.auc": sklearn.metrics.roc_auc_score(click, out["p_click"]),
        "click.logloss": sklearn.metrics.log_loss(click, out["p_click"]),
        "dwell.rmse_s": float(np.sqrt(np.mean((served_dwell[has_dwell] - dwell) ** 2))),
    }


@pytest.mark.slow
def test_day_two_rescores_day_ones_model_on_its_own_test_split(tmp_path):
    first = run(
        load_config(overrides=[*SMALL, f"runner.workdir={tmp_path}", f"data.date={DAYS[0]}"])
    )
    assert first["blessed"] is True and first["blessing"]["last_blessed"] is None
    config = load_config(overrides=[*SMALL, f"runner.workdir={tmp_path}", f"data.date={DAYS[1]}"])
    second = run(config, only=UP_TO_BLESS)
    run_dir = tmp_path / "runs" / second["run_id"]
    assert second["run_id"] != first["run_id"]

    last = second["blessing"]["last_blessed"]
    assert (last["run_id"], last["source"]) == (first["run_id"], "rescored")
    raw = pa.concat_tables(pq.read_table(p) for p in sorted(run_dir.glob("preprocess/eval_raw-*")))
    assert raw.num_rows == second["counts"]["eval_examples"]
    assert f"({raw.num_rows} rows)" in last["reason"]
    # Day 1's own figures came from day 1's test split; the re-scored ones from day 2's.
    assert last["metrics"]["click"] != first["metrics"]["click"]
    expected = _ranker_figures(first["models"]["mtlrec_ranker"], raw)
    for key, value in expected.items():
        task, metric = key.split(".")
        assert last["metrics"][task][metric] == pytest.approx(value, rel=1e-4), key
    assert set(last["metrics"]) == {"retrieval", "click", "purchase", "dwell"}
    assert 0.0 <= last["metrics"]["retrieval"]["recall@100"] <= 1.0
    regressions = [c for c in second["blessing"]["checks"] if c["kind"] == "regression"]
    assert {c["metric"] for c in regressions} == {
        "retrieval.recall@100",
        "click.auc",
        "purchase.auc",
        "dwell.rmse_s",
    }
    assert all(
        c["baseline"] == bless.metric_value(last["metrics"], c["metric"]) for c in regressions
    )

    page = (run_dir / "evaluate" / "report.html").read_text()
    box = page[page.index('<div class="headline">') : page.index("</div>")]
    assert page.index('<div class="headline">') < page.index("<h2>Metrics on the test split")
    verdict = "BLESSED" if second["blessed"] else "NOT BLESSED"
    assert f"<b>Blessing: {verdict}</b>" in box
    assert f"last blessed {first['run_id']} (re-scored on this test split)" in box
    assert all(html.escape(r) in box for r in second["blessing"]["reasons"])
    assert (
        f"| {last['metrics']['click']['auc']:.4f} |"
        in (run_dir / "evaluate" / "report.md").read_text()
    )

    # Once day 1's transform graph is gone, its stored figures stand in and say so.
    bless.record_blessed(tmp_path, first["metrics"], first["run_id"])
    shutil.rmtree(tmp_path / "runs" / first["run_id"] / "preprocess" / "transform_fn")
    stored = rescore.last_blessed(config.bless_config(), run_dir)
    assert stored.source == "stored" and stored.metrics["click"] == first["metrics"]["click"]
    assert "its transform graph is gone" in stored.reason
