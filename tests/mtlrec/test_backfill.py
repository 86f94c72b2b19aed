"""`mtlrec backfill` and dated runs: rolling windows, a warm-start chain, new ids served."""

import json
import pathlib
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from mtlrec.backfill import days
from mtlrec.config import load_config
from mtlrec.deploy.lineage import read_lineage
from mtlrec.steps import last_blessed_run

SMALL = [
    "--set", "data.generate.users=300",
    "--set", "data.generate.items=150",
    "--set", "data.generate.days=10",
    "--set", "data.train_days=5",
    "--set", "data.test_days=1",
    "--set", "training.epochs=1",
    "--set", "evaluation.baselines=[popularity]",
    "--set", "evaluation.min_metrics={}",
    "--set", "evaluation.beat_popularity=false",
    "--set", "evaluation.max_regression=1.0",
    "--", "--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1",
]  # fmt: skip
DAYS = ("2026-01-29", "2026-01-30", "2026-01-31")


def test_a_dated_run_reads_its_rolling_window_and_tests_its_last_days():
    config = load_config(
        overrides=["data.date=2026-01-31", "data.train_days=28", "data.test_days=3"]
    )
    assert (config.data.start, config.data.end) == ("2026-01-04", "2026-01-31")
    assert config.data.split_ts == "2026-01-29"
    alone = load_config(overrides=["data.date=2026-01-31", "data.start=2026-01-20"])
    assert (alone.data.start, alone.data.end, alone.data.split_ts) == (
        "2026-01-20",
        "2026-01-31",
        None,
    )
    assert list(days("2026-02-27", "2026-03-01")) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    with pytest.raises(ValueError, match="--end 2026-01-01 is before --start 2026-01-02"):
        list(days("2026-01-02", "2026-01-01"))


def test_the_warm_start_source_is_the_blessed_run_that_ends_latest_before_this_one(tmp_path):
    for run_id, end, blessed, updated in [
        ("a", "2026-01-29", True, "3"),
        ("b", "2026-01-30", False, "2"),
        ("c", "2026-01-31", True, "1"),
    ]:
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        manifest = {"run_id": run_id, "blessed": blessed, "updated": updated,
                    "input": {"dates": ["2026-01-01", end]}}  # fmt: skip
        (tmp_path / "runs" / run_id / "manifest.json").write_text(json.dumps(manifest))
    # A backfill redoing day 01-31 starts from 01-29 (01-30 was not blessed)...
    assert last_blessed_run(tmp_path, "c", "2026-01-31") == "a"
    # ...and nothing ends before the first day; undated runs take the latest updated.
    assert last_blessed_run(tmp_path, "x", "2026-01-29") is None
    assert last_blessed_run(tmp_path, "x", None) == "a"


def _mtlrec(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mtlrec", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.slow
def test_three_daily_runs_warm_start_in_a_chain_and_serve_new_ids(tmp_path):
    import tensorflow as tf
    import tensorflow_transform as tft

    dry = _mtlrec(tmp_path, "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--workdir", "w",
                  "--dry-run", *SMALL)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "backfill 2026-01-29: not run" in dry.stderr and not (tmp_path / "w" / "runs").exists()

    done = _mtlrec(tmp_path, "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--workdir", "w",
                   *SMALL)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "w" / "runs"
    manifests = {d: json.loads((runs / d / "manifest.json").read_text()) for d in DAYS}
    assert [manifests[d]["input"]["dates"] for d in DAYS] == [
        ["2026-01-25", "2026-01-29"],
        ["2026-01-26", "2026-01-30"],
        ["2026-01-27", "2026-01-31"],
    ]
    warm = {d: manifests[d]["steps"]["train"]["result"]["warm_start"] for d in DAYS}
    assert warm[DAYS[0]]["source"] is None  # nothing blessed yet: a cold start
    assert all(manifests[d]["blessed"] for d in DAYS)
    # Paths as the workdir was given (relative here).
    assert warm[DAYS[1]]["source"] == str(pathlib.Path("w/runs") / DAYS[0] / "train" / "model")
    assert warm[DAYS[2]]["source"] == str(pathlib.Path("w/runs") / DAYS[1] / "train" / "model")
    assert warm[DAYS[2]]["rows"]["user_id"]["carried"] > 100
    # The test split of each day is its last day.
    split = manifests[DAYS[2]]["counts"]["split_ts"]
    assert split == 1769817600000  # 2026-01-31T00:00Z

    # A user first seen in day 3's window is in its vocabulary and served by its model.
    old = tft.TFTransformOutput(str(runs / DAYS[1] / "preprocess" / "transform_fn"))
    new = tft.TFTransformOutput(str(runs / DAYS[2] / "preprocess" / "transform_fn"))
    fresh = sorted(set(new.vocabulary_by_name("user_id")) - set(old.vocabulary_by_name("user_id")))
    assert fresh, "the generator's users all appeared before day 3"
    recommender = next(p for p in manifests[DAYS[2]]["models"].values() if "recommender" in p)
    recommender = str(tmp_path / recommender)
    serve = tf.saved_model.load(recommender).signatures["serving_default"]
    row = pq.read_table(runs / DAYS[2] / "preprocess" / "eval_sample.parquet").to_pylist()[0]
    inputs = {name: tf.constant([row[name]]) for name in serve.structured_input_signature[1]}
    inputs["user_id"] = tf.constant([fresh[0]])
    index = new.transform_raw_features({"user_id": tf.constant([fresh[0]])})["user_id"]
    assert int(index.numpy()[0]) < new.vocabulary_size_by_name("user_id")  # its own row
    out = serve(**inputs)
    assert out["item_ids"].shape[0] == 1 and bool(tf.reduce_all(tf.math.is_finite(out["score"])))

    # Each served version names where it came from; day 3's parent is day 2's model.
    lineage = {d: read_lineage(tmp_path / manifests[d]["models"]["mtlrec_ranker"]) for d in DAYS}
    assert [lineage[d]["parent_run_id"] for d in DAYS] == [None, DAYS[0], DAYS[1]]
    assert lineage[DAYS[2]]["parent"] == warm[DAYS[2]]["source"]
    assert lineage[DAYS[2]]["dates"] == manifests[DAYS[2]]["input"]["dates"]
    assert lineage[DAYS[2]]["config_sha256"] == manifests[DAYS[2]]["config_sha256"]
    assert lineage[DAYS[2]]["input_sha256"] == manifests[DAYS[2]]["input"]["sha256"]
    assert lineage[DAYS[2]]["split_ts"] == split
    assert manifests[DAYS[2]]["steps"]["export"]["result"]["lineage"] == lineage[DAYS[2]]

    again = _mtlrec(tmp_path, "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--workdir", "w",
                    "--dry-run", *SMALL)  # fmt: skip
    assert all(f"backfill {d}: done" in again.stderr for d in DAYS)
