"""Smoke tests of bench/: the helpers on hand-made inputs, every benchmark at a tiny size."""

import json
import math
import os
import pathlib

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench import common, mmoe_paper
from bench.click_ceiling import fit


def test_format_table_aligns_and_formats_cells():
    text = common.format_table("T", ["name", "value"], [["a", 1234567], ["bb", 0.123456]])
    assert text.splitlines() == [
        "### T",
        "",
        "| name | value     |",
        "|------|-----------|",
        "|    a | 1,234,567 |",
        "|   bb |    0.1235 |",
    ]


def test_format_table_rejects_a_short_row():
    with pytest.raises(ValueError, match="has 1 cells"):
        common.format_table("T", ["a", "b"], [["only"]])


def test_format_table_without_rows_is_the_header():
    # A run of one baseline alone has no ratios to show.
    assert common.format_table("T", ["ratio", "value"], []).splitlines()[2:] == [
        "| ratio | value |",
        "|-------|-------|",
    ]


def test_statistics_match_hand_computed_values():
    assert common.mean_std([1.0, 2.0, 3.0, 6.0]) == (3.0, math.sqrt(14.0 / 3.0))
    assert common.mean_std([5.0]) == (5.0, 0.0)
    values = [float(v) for v in range(1, 101)]
    assert common.percentile(values, 50) == pytest.approx(50.5)
    assert common.percentile(values, 99) == pytest.approx(np.percentile(values, 99))
    summary = common.latency_summary([0.001, 0.003])
    assert summary["p50_ms"] == pytest.approx(2.0)
    assert summary["calls_per_s"] == pytest.approx(500.0)


def test_write_results_adds_context(tmp_path):
    path = common.write_results("demo", {"rows": [1, 2]}, results_dir=tmp_path)
    document = json.loads(path.read_text())
    assert path == tmp_path / "demo.json"
    assert document["rows"] == [1, 2]
    assert document["benchmark"] == "demo"
    assert document["command"].startswith("python -m bench.demo")
    assert document["host"]["cpus"] == os.cpu_count()


def test_tree_rss_counts_this_process_and_nothing_for_a_dead_pid():
    assert common.tree_rss_bytes(os.getpid()) > 10 * 2**20
    assert common.tree_rss_bytes(2**22 + 12345) == 0


def test_task_weights_have_the_requested_correlation():
    rng = np.random.default_rng(0)
    for p in (0.5, 0.9, 1.0):
        w1, w2 = mmoe_paper.task_weights(p, rng, dim=100, c=2.0)
        assert np.linalg.norm(w1) == pytest.approx(2.0)
        assert np.linalg.norm(w2) == pytest.approx(2.0)
        assert w1 @ w2 / 4.0 == pytest.approx(p)
    with pytest.raises(ValueError, match="within"):
        mmoe_paper.task_weights(1.5, rng)


def test_labels_follow_the_paper_formula():
    x = np.array([[1.0, 2.0]])
    w = np.array([0.5, 0.25])  # wᵀx = 1
    alpha, beta = np.array([2.0, 1.0]), np.array([0.0, 0.5])
    expected = 1.0 + math.sin(2.0) + math.sin(1.5) + 0.1
    assert mmoe_paper.labels(x, w, alpha, beta, np.array([0.1]))[0] == pytest.approx(expected)


def test_mmoe_paper_models_learn_the_synthetic_tasks():
    size = mmoe_paper.Size(
        correlations=(0.5,), seeds=1, n_train=2048, n_test=512, epochs=8, batch_size=64
    )
    for kind in mmoe_paper.MODELS:
        run = mmoe_paper.train_one(kind, 0.5, seed=0, size=size)
        # Predicting the mean scores the label variance; learning must do clearly better.
        assert run["test_mse"] < 0.7 * run["label_var"], run
    with pytest.raises(ValueError, match="model kind"):
        mmoe_paper.build_model("moe")


def test_mmoe_paper_summary_pairs_runs_by_seed():
    runs = [
        {"model": m, "p": p, "seed": s, "test_mse": v}
        for (m, p, s, v) in [
            ("shared_bottom", 0.5, 0, 3.0),
            ("mmoe", 0.5, 0, 1.0),
            ("shared_bottom", 0.5, 1, 5.0),
            ("mmoe", 0.5, 1, 1.0),
            ("shared_bottom", 1.0, 0, 2.0),
            ("mmoe", 1.0, 0, 1.0),
            ("shared_bottom", 1.0, 1, 2.0),
            ("mmoe", 1.0, 1, 2.0),
        ]
    ]
    summary = mmoe_paper.summarise(runs, (0.5, 1.0))
    assert summary["test_mse"]["shared_bottom@0.5"] == {"mean": 4.0, "std": math.sqrt(2.0)}
    assert summary["mmoe_advantage"]["0.5"] == {"mean": 3.0, "std": math.sqrt(2.0)}
    assert summary["mmoe_advantage"]["1.0"]["mean"] == 0.5
    assert summary["advantage_grows_as_p_falls"] is True


@pytest.fixture(scope="module")
def tiny_logs(tmp_path_factory) -> pathlib.Path:
    from bench.preprocess import generate_events

    out = tmp_path_factory.mktemp("bench") / "data"
    generate_events(1500, out)
    return out


def test_pyarrow_variant_in_a_child_reports_rows_and_memory(tiny_logs, tmp_path):
    import pyarrow.parquet as pq

    from bench.preprocess_variants import events_parquet

    expected = sum(pq.ParquetFile(f).metadata.num_rows for f in events_parquet(tiny_logs))
    args = ["--variant", "pyarrow", "--data", str(tiny_logs), "--out", str(tmp_path / "o")]
    child = common.run_child("bench.preprocess", args)
    assert child.result["rows"] == expected
    assert (tmp_path / "o" / "plain.tfrecord.gz").stat().st_size > 0
    assert child.peak_rss_mb > 50  # the child imported TensorFlow
    assert child.peak_tree_rss_mb >= child.peak_rss_mb


def test_a_failing_child_raises_with_its_error(tmp_path):
    args = ["--variant", "pyarrow", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(RuntimeError, match="holds no Parquet files"):
        common.run_child("bench.preprocess", args)


def test_preprocess_ratios_compare_variants_of_the_same_size():
    from bench.preprocess import ratios

    rows = [
        {"events": 10, "variant": "mtlrec", "events_per_s": 40.0, "peak_tree_rss_mb": 100.0},
        {"events": 10, "variant": "tft", "events_per_s": 50.0, "peak_tree_rss_mb": 80.0},
        {"events": 10, "variant": "pyarrow", "events_per_s": 80.0, "peak_tree_rss_mb": 10.0},
        {"events": 10, "variant": "mtlrec_4f", "events_per_s": 60.0, "peak_tree_rss_mb": 90.0},
        {"events": 20, "variant": "mtlrec", "events_per_s": 45.0, "peak_tree_rss_mb": 130.0},
    ]
    rows = [{**r, "round": 0} for r in rows]
    assert ratios(rows) == {
        "mtlrec_vs_tft@10": 0.8,
        "mtlrec_vs_pyarrow@10": 0.5,
        "mtlrec_4f_vs_tft@10": 1.2,
        "mtlrec_4f_vs_pyarrow@10": 0.75,
        "peak_tree_rss_growth_mtlrec_10_to_20": 1.3,
    }


def test_preprocess_ratios_pair_variants_within_a_round_and_take_the_median():
    from bench.preprocess import ratios, ratios_by_round, summary

    def row(variant, k, rate):
        return {
            "events": 10,
            "variant": variant,
            "round": k,
            "rows": 100,
            "seconds": 100 / rate,
            "events_per_s": rate,
            "process_seconds": 1.0,
            "peak_rss_mb": 1.0,
            "peak_tree_rss_mb": 1.0,
        }

    # Round 1 ran on a machine twice as slow: paired, its ratio is the same as round 0's.
    rates = {"mtlrec": (40.0, 20.0, 36.0), "tft": (50.0, 25.0, 40.0)}
    rows = [row(v, k, rate) for v, per_round in rates.items() for k, rate in enumerate(per_round)]
    assert ratios_by_round(rows)["mtlrec_vs_tft@10"] == [0.8, 0.8, 0.9]
    assert ratios(rows)["mtlrec_vs_tft@10"] == 0.8
    mine = next(r for r in summary(rows) if r["variant"] == "mtlrec")
    assert mine["rounds"] == 3 and mine["events_per_s"] == 36.0
    assert (mine["events_per_s_min"], mine["events_per_s_max"]) == (20.0, 40.0)


def test_preprocess_rounds_rotate_the_order_of_the_variants():
    from bench.preprocess import _rotated

    variants = ["mtlrec", "tft", "pyarrow"]
    assert [_rotated(variants, k) for k in range(4)] == [
        ["mtlrec", "tft", "pyarrow"],
        ["tft", "pyarrow", "mtlrec"],
        ["pyarrow", "mtlrec", "tft"],
        ["mtlrec", "tft", "pyarrow"],
    ]


def test_list_batch_wraps_each_value_in_a_one_element_list():
    import pyarrow as pa

    from bench.preprocess_variants import _list_batch

    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["i1", "i2"],
            "event_type": ["click", "x"],
            "ts": [5, 6],
        }
    )
    batch = _list_batch(table)
    assert batch.schema.names == ["user_id", "item_id", "event_type", "ts"]
    assert batch.column("user_id").to_pylist() == [["u1"], ["u2"]]
    assert batch.column("ts").to_pylist() == [[5], [6]]


def test_measure_times_the_steps_and_the_input_wait():
    import time

    import tensorflow as tf

    from bench.train import IN_MEMORY_BATCHES, measure

    def slow(batch):  # 20 ms to produce every batch: the input is the bottleneck
        time.sleep(0.02)
        return batch

    data = tf.data.Dataset.range(10_000).batch(4).map(lambda b: tf.py_function(slow, [b], tf.int64))
    seen, calls = [], []

    def call(batches, n):
        calls.append(n)
        seen.extend(int(next(batches)[0]) for _ in range(n))
        return n

    result = measure(call, data, steps=6, warmup=2, batch_size=4, steps_per_call=4, slices=2)
    # Warm-up of each run, then the timed steps in two slices of 3 that alternate between
    # the data and the batches in memory, at most 4 steps a call.
    assert calls == [2, 2, 3, 3, 3, 3]
    # The real run takes batches in order; the in-memory run repeats the first 50 batches.
    batches = [0, 4, 8, 12, 16, 20, 24, 28]
    assert seen == batches[:2] * 2 + batches[2:5] * 2 + batches[5:8] * 2
    assert IN_MEMORY_BATCHES > 8
    assert result["rows"] == 24
    assert result["examples_per_s"] == pytest.approx(24 / result["seconds"])
    assert result["input_wait_fraction"] > 0.5
    assert result["in_memory_examples_per_s"] > result["examples_per_s"]


def test_plain_dataset_reads_the_three_columns(tmp_path):
    import tensorflow as tf

    from bench.train_plain import plain_dataset

    with tf.io.TFRecordWriter(str(tmp_path / "train-0.tfrecord.gz"), options="GZIP") as writer:
        for i in range(6):
            feature = {
                "user_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                "item_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[10 + i])),
                "click": tf.train.Feature(float_list=tf.train.FloatList(value=[i % 2])),
                "other": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    batch = next(iter(plain_dataset(tmp_path / "train-*.tfrecord.gz", 6, seed=0, shuffle_buffer=1)))
    assert sorted(batch) == ["click", "item_id", "user_id"]
    assert batch["user_id"].numpy().tolist() == [0, 1, 2, 3, 4, 5]
    assert batch["item_id"].numpy().tolist() == [10, 11, 12, 13, 14, 15]
    assert batch["click"].numpy().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no TFRecord file"):
        plain_dataset(tmp_path / "eval-*", 6, seed=0, shuffle_buffer=1)


def test_plain_model_learns_which_users_click():
    import tensorflow as tf

    from bench.train_plain import PlainTwoTaskModel, plain_step, plain_steps

    tf.keras.utils.set_random_seed(0)
    users = tf.range(64, dtype=tf.int64) % 8
    batch = {
        "user_id": users,
        "item_id": tf.range(64, dtype=tf.int64) % 16,
        "click": tf.cast(users % 2 == 0, tf.float32),
    }
    model = PlainTwoTaskModel(n_users=8, n_items=16, dim=8)
    step = plain_step(model, learning_rate=0.05)
    for _ in range(30):
        step(batch)
    # The other 30 steps in one compiled loop over an iterator.
    plain_steps(step)(iter(tf.data.Dataset.from_tensors(batch).repeat()), tf.constant(30))
    u, i = model.user_embedding(batch["user_id"]), model.item_embedding(batch["item_id"])
    p = tf.sigmoid(tf.squeeze(model.click_head(tf.concat([u, i], axis=1)), 1)).numpy()
    clicked = batch["click"].numpy() > 0.5
    assert p[clicked].min() > 0.8 and p[~clicked].max() < 0.2


def test_serving_targets_and_request_storage():
    from bench.serving import _storable, targets

    rows = [
        {"model": "ranker", "catalogue_items": 60, "p99_ms": 4.0},
        {"model": "retriever", "catalogue_items": 100_000, "p99_ms": 25.0},
        {"model": "retriever", "catalogue_items": 10_000, "p99_ms": 5.0},
    ]
    assert targets(rows) == {
        "ranker": {"p99_ms": 4.0, "limit_ms": 10.0, "met": True},
        "retriever@100000": {"p99_ms": 25.0, "limit_ms": 20.0, "met": False},
    }
    stored = _storable(np.array(["a", "bc"], dtype=object))
    assert stored.dtype.kind == "S" and stored.tolist() == [b"a", b"bc"]
    assert _storable(np.array([1.5])).dtype == np.float64


def test_quality_grids():
    from bench.synthetic_quality import grid

    assert len(grid("full")) == 12 and len(set(grid("full"))) == 12
    main = grid("main")
    assert len(main) == 9 and ("mmoe", "alternating", "fixed") in main
    assert ("ple", "alternating", "uncertainty") in grid("smoke")
    with pytest.raises(ValueError, match="grid must be one of"):
        grid("everything")


def test_movielens_random_split_moves_validation_and_test_rows_by_whole_weeks(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.movielens import WEEK_MS, random_split

    path = tmp_path / "interactions" / "part-00000.parquet"
    path.parent.mkdir()
    ts = np.array([1_000, 5_000, 2_000, 9_000_000, 7_000, 3_000, 4_000, 8_000, 6_000, 10])
    pq.write_table(pa.table({"ts": ts, "rating": np.arange(10.0)}), path)
    split_ts = random_split(tmp_path, train_rows=7, seed=1, validation_fraction=0.3)
    after = pq.read_table(path)
    moved = after.column("ts").to_numpy()
    assert after.column("rating").to_numpy().tolist() == list(np.arange(10.0))
    test = moved >= split_ts
    validation = (moved > ts.max()) & ~test
    assert (test.sum(), validation.sum()) == (3, 2)  # 7 - floor(0.3 * 7) = 5 train rows
    train = ~test & ~validation
    assert (moved[train] == ts[train]).all()
    weeks = (ts.max() - ts.min()) // WEEK_MS + 1
    assert (moved[validation] - ts[validation] == weeks * WEEK_MS).all()
    assert (moved[test] - ts[test] == 2 * weeks * WEEK_MS).all()
    # mtlrec's validation split (the latest share of the training span by rows) is exactly
    # the moved rows: every one of them is later than every training row.
    assert moved[validation].min() > moved[train].max()


def test_movielens_config_uses_the_preset_and_skips_without_data(tmp_path, capsys):
    from bench import movielens
    from mtlrec.config import validate

    document = movielens.config_document(tmp_path / "raw", tmp_path / "work", 123)
    config = validate(document)
    assert [t.name for t in config.tasks] == ["retrieval", "rating"]
    assert config.data.split_ts == 123 and config.data.interactions is not None
    assert movielens.main(["--src", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_every_benchmark_finishes_at_tiny_size(tmp_path, monkeypatch):
    from bench import preprocess, serving, synthetic_quality, train, worlds

    results = tmp_path / "results"
    monkeypatch.setattr(common, "RESULTS_DIR", results)
    work = str(tmp_path / "work")
    assert mmoe_paper.main(["--size", "tiny"]) == 0
    in_process = "--beam-arg=--runner=FnApiRunner"
    assert (
        preprocess.main(["--events", "1500", "--rounds", "1", in_process, "--workdir", work]) == 0
    )
    assert train.main(["--size", "tiny", "--workdir", work]) == 0
    assert serving.main(["--size", "tiny", "--workdir", work]) == 0
    assert synthetic_quality.main(["--size", "tiny", "--grid", "smoke", "--workdir", work]) == 0
    assert worlds.main(["--worlds", "skewed", "--size", "tiny"]) == 0

    def read(name):
        return json.loads((results / f"{name}.json").read_text())

    assert len(read("mmoe_paper")["runs"]) == 4
    rows = {r["variant"]: r for r in read("preprocess")["rows"]}
    assert rows["mtlrec"]["rows"] == rows["mtlrec"]["events_read"] == rows["mtlrec_4f"]["rows"]
    assert rows["tft"]["rows"] == rows["pyarrow"]["rows"] < rows["mtlrec"]["rows"]
    trained = read("train")
    assert [r["variant"] for r in trained["rows"]] == [
        "mtlrec",
        "mtlrec_two_tasks",
        "plain",
        "plain_fused",
        "plain_cached",
        "mtlrec_train",
    ]
    assert trained["rows"][1]["tasks"] == ["retrieval", "click"]
    assert [r["steps_per_execution"] for r in trained["rows"][2:5]] == [1, 16, 1]
    assert [r["input"] for r in trained["rows"][:5]] == [
        "memory",
        "memory",
        "stream",
        "stream",
        "memory",
    ]
    assert all(value > 0 for value in trained["ratios"].values())
    served = {(r["model"], r["catalogue_items"]): r for r in read("serving")["rows"]}
    assert served[("retriever", 1000)]["request_rows"] == 1
    assert next(r for (m, _), r in served.items() if m == "ranker")["request_rows"] == 100
    (world,) = read("worlds")["runs"]
    assert world["knobs"]["latent_dim"] == 4 and world["knobs"]["users"] == 120
    assert 0.5 < world["oracle_click_auc"] < 1.0 and world["popularity_recall@100"] > 0
    quality = read("synthetic_quality")
    assert len(quality["rows"]) == 2
    assert all(0.0 <= r["click_auc"] <= 1.0 for r in quality["rows"])


def test_the_generator_form_reaches_the_oracle_on_data_of_its_own_form():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(100, 2)), rng.normal(size=(40, 2))

    def split(n: int) -> tuple[dict, np.ndarray]:
        x = {
            "user_id": rng.integers(0, 100, n),
            "item_id": rng.integers(0, 40, n),
            "device": rng.integers(0, 3, n),
            "position": rng.integers(0, 10, n),
            "price": np.zeros(n, np.float32),
        }
        logit = np.sum(users[x["user_id"]] * items[x["item_id"]], 1) - 1.0
        p = (1 + x["position"]) ** -0.7 / (1 + np.exp(-logit))
        return x, (rng.random(n) < p).astype(np.float32), p

    (tx, ty, _), (vx, vy, _), (ex, ey, ep) = split(40_000), split(5_000), split(10_000)
    validation_auc, test_auc = fit(
        {"train": (tx, ty), "validation": (vx, vy), "eval": (ex, ey)}, 2, 0.0
    )
    assert test_auc >= 0.97 * roc_auc_score(ey, ep)
    assert validation_auc > 0.6
