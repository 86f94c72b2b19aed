"""The validate + preprocess jobs end to end on a small raw directory (SPEC §5, §6, §13)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("tensorflow_transform")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from mtlrec.config import Config
from mtlrec.manifest import invariant_holds
from mtlrec.pipeline.preprocess import run_preprocess, run_validate, run_validate_and_preprocess
from mtlrec.pipeline.step_counts import BadInputError, check_preprocessed

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
MIN = 60_000
DAY = 1440 * MIN
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _events() -> list[dict]:
    """Ten days; user u<d%3>, 2 impressions a day; the first of each is clicked, some bought."""
    rows = []
    for day in range(10):
        ts = T0 + day * DAY
        user, request = f"u{day % 3}", f"r{day}"
        for slot, item in enumerate((f"i{day % 4}", f"i{(day + 1) % 4}")):
            rows.append(("impression", user, item, request, ts, slot, None))
        rows.append(("click", user, f"i{day % 4}", request, ts + MIN, None, 10.0 + day))
        if day % 2 == 0:
            rows.append(("purchase", user, f"i{day % 4}", None, ts + 2 * MIN, None, None))
    rows.append(("click", "u9", "i9", "r99", T0, None, None))  # orphan click
    rows.append(("purchase", "u9", "i8", None, T0, None, None))  # orphan purchase
    rows.append(("view", "u1", "i1", "r1", T0, None, None))  # unknown_event_type
    records = [
        {
            "event_id": f"e{i}",
            "ts": ts,
            "user_id": user,
            "item_id": item,
            "event_type": kind,
            "request_id": request,
            "position": position,
            "dwell_s": dwell,
            "device": "app" if i % 2 else "web",
        }
        for i, (kind, user, item, request, ts, position, dwell) in enumerate(rows)
    ]
    return records + [dict(records[0])]  # one duplicate event


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    pq.write_table(pa.Table.from_pylist(_events()), raw / "events.parquet")
    items = [
        {"item_id": f"i{k}", "category": f"c{k % 2}", "price": 10.0 * (k + 1)} for k in range(4)
    ]
    items.append({"item_id": "i7", "category": "c1", "price": 5.0})  # never shown
    pq.write_table(pa.Table.from_pylist(items), raw / "items.parquet")
    users = [{"user_id": f"u{k}", "country": "de" if k else "fr"} for k in range(3)]
    pq.write_table(pa.Table.from_pylist(users), raw / "users.parquet")
    return raw


JOB_CONFIG = {
    "data": {"max_bad_fraction": 0.1, "split_ts": T0 + 8 * DAY},
    "features": {
        "enabled": ["user_id", "item_id", "device", "country", "category", "price", "hour"]
    },
}


@pytest.fixture(scope="module")
def job(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = Config.model_validate(JOB_CONFIG)
    validated = run_validate(config.job_config(), raw_dir, out / "validate", beam_args=IN_PROCESS)
    counts = run_preprocess(
        config.job_config(), out / "validate", out / "preprocess", beam_args=IN_PROCESS
    )
    return out, {**validated, **counts}


def test_counts_match_the_hand_count_and_the_invariant(job):
    _, counts = job
    assert counts["events_read"] == 39
    assert counts["duplicates"] == 1
    assert sum(counts["rejected"].values()) == counts["rejected"]["unknown_event_type"] == 1
    assert counts["accepted"] == {"impression": 20, "click": 11, "purchase": 6}
    assert counts["impressions"] == 20
    assert (counts["clicks_joined"], counts["orphan_clicks"]) == (10, 1)
    assert (counts["purchases_attributed"], counts["orphan_purchases"]) == (5, 1)
    # 16 examples before split_ts: the latest 10 % by rows (floor(0.9 * 16) = row 14 on)
    # are the validation split.
    assert (counts["train_examples"], counts["validation_examples"]) == (14, 2)
    assert counts["eval_examples"] == 4
    assert (counts["clicked_impressions"], counts["purchased_impressions"]) == (10, 5)
    # Per split: the first impression of each day is clicked (with dwell 10 + day), the even
    # days' clicks are bought; train = days 0-6, validation = day 7, test = days 8-9.
    assert counts["positives"] == {
        "train": {"click": 7, "purchase": 4, "dwell": 7},
        "validation": {"click": 1, "purchase": 0, "dwell": 1},
        "eval": {"click": 2, "purchase": 1, "dwell": 2},
    }
    assert counts["split_ts"] == T0 + 8 * DAY
    assert invariant_holds(counts)


def _read_examples(step_dir, split, spec):
    files = sorted(str(p) for p in step_dir.glob(f"{split}-*.tfrecord.gz"))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.io.parse_single_example(r, spec) for r in dataset]


def test_examples_are_transformed_with_train_vocabularies(job):
    out, _ = job
    tft_output = tft.TFTransformOutput(str(out / "preprocess" / "transform_fn"))
    spec = tft_output.transformed_feature_spec()
    train = _read_examples(out / "preprocess", "train", spec)
    validation = _read_examples(out / "preprocess", "validation", spec)
    evaluation = _read_examples(out / "preprocess", "eval", spec)
    assert (len(train), len(validation), len(evaluation)) == (14, 2, 4)
    # One transform for every split, split again on the ts it passes through.
    last_train = max(int(e["event_ts"]) for e in train)
    assert all(last_train <= int(e["event_ts"]) < T0 + 8 * DAY for e in validation)
    assert all(int(e["event_ts"]) >= T0 + 8 * DAY for e in evaluation)
    # Days 0-7 trained: u0..u2 and i0..i3 seen; vocabularies hold exactly those.
    assert sorted(tft_output.vocabulary_by_name("user_id")) == [b"u0", b"u1", b"u2"]
    assert sorted(tft_output.vocabulary_by_name("item_id")) == [b"i0", b"i1", b"i2", b"i3"]
    assert sorted(tft_output.vocabulary_by_name("country")) == [b"de", b"fr"]
    by_key = {(e["user_key"].numpy(), e["item_key"].numpy(), int(e["event_ts"])): e for e in train}
    first = by_key[(b"u0", b"i0", T0)]
    assert (float(first["click"]), float(first["purchase"])) == (1.0, 1.0)
    assert float(first["dwell"]) == pytest.approx(tf.math.log1p(10.0).numpy())
    assert float(first["dwell_mask"]) == 1.0
    second = by_key[(b"u0", b"i1", T0)]
    assert (float(second["click"]), float(second["dwell_mask"])) == (0.0, 0.0)
    assert all(int(e["hour"]) == 0 for e in train + evaluation)


def test_catalogue_and_eval_sample(job):
    out, _ = job
    catalogue = sorted(
        pq.read_table(out / "preprocess" / "catalog.parquet").to_pylist(),
        key=lambda r: r["item_id"],
    )
    assert [r["item_id"] for r in catalogue] == ["i0", "i1", "i2", "i3", "i7", "i8", "i9"]
    assert catalogue[0] == {"item_id": "i0", "category": "c0", "price": 10.0}
    assert catalogue[-1] == {"item_id": "i9", "category": None, "price": None}
    sample = pq.read_table(out / "preprocess" / "eval_sample.parquet")
    assert sample.num_rows == 4
    assert min(sample.column("ts").to_pylist()) >= T0 + 8 * DAY
    assert {"user_id", "item_id", "click", "purchase", "dwell_s", "country"} <= set(
        sample.schema.names
    )
    written = json.loads((out / "preprocess" / "counts.json").read_text())
    assert (written["train_examples"], written["validation_examples"]) == (14, 2)


def _raw_eval(step_dir):
    return pa.concat_tables(
        pq.read_table(p) for p in sorted(step_dir.glob("eval_raw-*.parquet"))
    ).to_pylist()


def test_the_test_split_is_kept_raw_for_rescoring(job):
    out, _ = job
    rows = _raw_eval(out / "preprocess")
    columns = ("user_id", "item_id", "ts", "position", "click", "purchase", "dwell_s", "country")
    got = sorted(tuple(r[c] for c in columns) for r in rows)
    # Days 8 and 9 (from split_ts on): u2 shown i0 (clicked, bought) and i1; u0 shown i1
    # (clicked, 19 s) and i2. Untransformed: raw ids, raw dwell seconds, the users' country.
    assert got == [
        ("u0", "i1", T0 + 9 * DAY, 0, 1, 0, 19.0, "fr"),
        ("u0", "i2", T0 + 9 * DAY, 1, 0, 0, None, "fr"),
        ("u2", "i0", T0 + 8 * DAY, 0, 1, 1, 18.0, "de"),
        ("u2", "i1", T0 + 8 * DAY, 1, 0, 0, None, "de"),
    ]


def _all_examples(step_dir):
    tft_output = tft.TFTransformOutput(str(step_dir / "transform_fn"))
    spec = tft_output.transformed_feature_spec()
    return {
        split: sorted(
            tuple((k, np.asarray(e[k].numpy()).tolist()) for k in sorted(e))
            for e in _read_examples(step_dir, split, spec)
        )
        for split in ("train", "eval")
    }


def _parquet_rows(path):
    return sorted(pq.read_table(path).to_pylist(), key=lambda r: json.dumps(r, sort_keys=True))


def test_one_beam_job_writes_what_the_two_jobs_write(raw_dir, job, tmp_path):
    two, counts = job
    one = tmp_path
    validated, processed = run_validate_and_preprocess(
        Config.model_validate(JOB_CONFIG).job_config(),
        raw_dir,
        one / "validate",
        one / "preprocess",
        beam_args=IN_PROCESS,
    )
    assert {**validated, **processed, "dead_letter": ""} == {**counts, "dead_letter": ""}
    assert _all_examples(one / "preprocess") == _all_examples(two / "preprocess")
    for table in ("events", "items", "users"):
        assert _parquet_rows(one / "validate" / table) == _parquet_rows(two / "validate" / table)
    for name in ("catalog.parquet", "eval_sample.parquet"):
        assert _parquet_rows(one / "preprocess" / name) == _parquet_rows(two / "preprocess" / name)
    raw_one, raw_two = (_raw_eval(d / "preprocess") for d in (one, two))
    assert sorted(raw_one, key=json.dumps) == sorted(raw_two, key=json.dumps)
    for name in ("user_id", "item_id", "device", "category", "item_log_q"):
        one_tft = tft.TFTransformOutput(str(one / "preprocess" / "transform_fn"))
        two_tft = tft.TFTransformOutput(str(two / "preprocess" / "transform_fn"))
        assert one_tft.vocabulary_by_name(name) == two_tft.vocabulary_by_name(name)
    dead = [p.read_text() for p in sorted((one / "validate" / "dead_letter").glob("*.jsonl"))]
    assert "unknown_event_type" in "".join(dead)


def test_one_beam_job_with_no_valid_event_stops_on_the_bad_fraction(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    bad = [{**e, "event_type": "view"} for e in _events()[:5]]
    pq.write_table(pa.Table.from_pylist(bad), raw / "events.parquet")
    with pytest.raises(BadInputError, match="5 of 5 events rejected"):
        run_validate_and_preprocess(
            Config().job_config(),
            raw,
            tmp_path / "validate",
            tmp_path / "preprocess",
            beam_args=IN_PROCESS,
        )
    assert json.loads((tmp_path / "validate" / "counts.json").read_text())["events_read"] == 5


def test_preprocess_checks_apply_to_the_one_job_counts(tmp_path):
    config = Config.model_validate({"data": {"split_ts": "2001-01-01"}})
    no_impression = {"accepted": {"impression": 0, "click": 3}}
    counts = {
        "train_examples": 0,
        "validation_examples": 0,
        "eval_examples": 20,
        "split_ts": 978_307_200_000,
    }
    with pytest.raises(ValueError, match="no accepted impressions"):
        check_preprocessed(config.data, no_impression, counts, tmp_path)
    with pytest.raises(ValueError, match="puts every one of 20"):
        check_preprocessed(config.data, {"accepted": {"impression": 20}}, counts, tmp_path)


INTERACTIONS_CSV = """id,uid,movie,when,rating,genres
m1,u1,i1,2024-01-01T10:00:00Z,4,Drama|Comedy
m2,u1,i2,2024-01-02T10:00:00Z,3,Drama
m3,u2,i1,2024-01-03T10:00:00Z,5,Drama|Comedy
m4,u2,i3,2024-01-04T10:00:00Z,abc,Horror
m5,u3,i2,2024-01-05T10:00:00Z,2,Drama
m2,u1,i2,2024-01-02T10:00:00Z,3,Drama
m6,u3,i3,2024-01-06T10:00:00Z,1,Horror
m7,u4,i4,2024-01-07T10:00:00Z,4,Western
"""


def test_pre_joined_interactions_with_a_column_mapping(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "ratings.csv").write_text(INTERACTIONS_CSV)
    config = Config.model_validate(
        {
            "data": {
                "interactions": {
                    "table": "ratings",
                    "columns": {
                        "event_id": "id",
                        "user_id": "uid",
                        "item_id": "movie",
                        "ts": "when",
                    },
                },
                "split_ts": "2024-01-05T00:00:00Z",
                "max_bad_fraction": 0.2,
            },
            "features": {"enabled": ["user_id", "item_id", "genres"], "history_length": 2},
            "tasks": [
                {"name": "retrieval", "kind": "retrieval"},
                {"name": "rating", "kind": "regression", "label": "rating"},
            ],
            "export": {"score_weights": {"rating": 1.0}},
            "evaluation": {"min_metrics": {}},
        }
    )
    validated = run_validate(config.job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    assert (validated["events_read"], validated["duplicates"]) == (8, 1)
    assert validated["rejected"]["bad_value"] == sum(validated["rejected"].values()) == 1
    assert validated["accepted"] == {"interactions": 6}
    counts = run_preprocess(
        config.job_config(), tmp_path / "validate", tmp_path / "pre", beam_args=IN_PROCESS
    )
    # 3 before the split: floor(0.9 * 3) = row 2 on is validation
    assert (counts["impressions"], counts["train_examples"], counts["eval_examples"]) == (6, 2, 3)
    assert counts["validation_examples"] == 1
    assert invariant_holds({**validated, **counts})
    tft_output = tft.TFTransformOutput(str(tmp_path / "pre" / "transform_fn"))
    # Train (m1, m2; m3 is validation): Drama x2, Comedy x1; Horror and Western eval-only.
    assert tft_output.vocabulary_by_name("genres") == [b"Drama", b"Comedy"]
    spec = tft_output.transformed_feature_spec()
    train = _read_examples(tmp_path / "pre", "train", spec)
    ratings = sorted(
        (
            e["user_key"].numpy(),
            e["item_key"].numpy(),
            float(e["rating"]),
            e["genres"].numpy().tolist(),
            e["history"].numpy().tolist(),
        )
        for e in train
    )
    item = tft_output.vocabulary_by_name("item_id").index
    # The ragged features parse back exactly (genres by their vocabulary, the history by
    # item_id's): the user's earlier ratings only.
    assert ratings == [(b"u1", b"i1", 4.0, [0, 1], []), (b"u1", b"i2", 3.0, [0], [item(b"i1")])]
    (held,) = _read_examples(tmp_path / "pre", "validation", spec)
    assert (held["user_key"].numpy(), held["item_key"].numpy()) == (b"u2", b"i1")
    assert held["history"].numpy().tolist() == []  # u2's m4 was rejected
    # A test example sees the user's earlier test rows: what the server knew by then.
    histories = {
        e["item_key"].numpy(): e["history"].numpy().tolist()
        for e in _read_examples(tmp_path / "pre", "eval", spec)
    }
    assert histories[b"i3"] == [item(b"i2")] and histories[b"i2"] == []
    assert "click" not in spec and "dwell" not in spec
    catalogue = pq.read_table(tmp_path / "pre" / "catalog.parquet").to_pylist()
    assert sorted(catalogue, key=lambda r: r["item_id"]) == [
        {"item_id": "i1", "genres": "Drama|Comedy"},
        {"item_id": "i2", "genres": "Drama"},
        {"item_id": "i3", "genres": "Horror"},
        {"item_id": "i4", "genres": "Western"},
    ]


def _outputs(step_dir):
    """Row counts, vocabularies and label sums of a preprocess output directory."""
    tft_output = tft.TFTransformOutput(str(step_dir / "transform_fn"))
    spec = tft_output.transformed_feature_spec()
    summary = {}
    for split in ("train", "eval"):
        examples = _read_examples(step_dir, split, spec)
        summary[split] = (
            len(examples),
            sum(float(e["click"]) for e in examples),
            sum(float(e["purchase"]) for e in examples),
        )
    for name in ("user_id", "item_id", "device", "category", "item_log_q"):
        summary[name] = tft_output.vocabulary_by_name(name)
    summary["catalogue"] = pq.read_table(step_dir / "catalog.parquet").num_rows
    return summary


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from mtlrec.datasets.synthetic.generate import generate

    out = tmp_path_factory.mktemp("generated")
    truth = generate(out / "raw", users=300, items=150, days=4, seed=7, progress=False)
    config = Config.model_validate({"data": {"max_bad_fraction": 0.05}})
    return out, config, truth


@pytest.mark.slow
def test_generated_data_counts_equal_truth(generated):
    out, config, truth = generated
    validated = run_validate(
        config.job_config(), out / "raw", out / "validate", beam_args=IN_PROCESS
    )
    counts = run_preprocess(
        config.job_config(), out / "validate", out / "in_process", beam_args=IN_PROCESS
    )
    merged = {**validated, **counts}
    # The generator's truth counts the training span whole; validation is carved from it.
    pre_test = merged["train_examples"] + merged["validation_examples"]
    seen = {k: merged[k] for k in truth["counts"]}
    assert {**seen, "train_examples": pre_test} == truth["counts"]
    assert 0 < merged["validation_examples"] < pre_test
    assert counts["split_ts"] == truth["split_ts"]
    assert invariant_holds(merged)


@pytest.mark.slow
def test_multi_process_run_equals_in_process_run(generated):
    out, config, _ = generated
    if not (out / "in_process").exists():
        run_validate(config.job_config(), out / "raw", out / "validate", beam_args=IN_PROCESS)
        run_preprocess(
            config.job_config(), out / "validate", out / "in_process", beam_args=IN_PROCESS
        )
    multi = [
        "--runner=FnApiRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ]
    run_validate(config.job_config(), out / "raw", out / "validate_mp", beam_args=multi)
    run_preprocess(config.job_config(), out / "validate_mp", out / "multi_process", beam_args=multi)
    in_process, multi_process = _outputs(out / "in_process"), _outputs(out / "multi_process")
    assert in_process["train"][0] > 0 and in_process["eval"][0] > 0
    assert multi_process == in_process


def test_a_split_before_all_data_is_a_clear_error():
    from mtlrec.pipeline.step_counts import check_training_examples

    config = Config.model_validate({"data": {"split_ts": "2001-01-01"}})
    counts = {
        "train_examples": 0,
        "validation_examples": 0,
        "eval_examples": 20,
        "split_ts": 978_307_200_000,
    }
    with pytest.raises(ValueError, match=r"data.split_ts='2001-01-01' puts every one of 20"):
        check_training_examples(counts, config.data)
    with pytest.raises(ValueError, match=r"validation_fraction=0.1 leaves the validation split"):
        check_training_examples({**counts, "train_examples": 1}, config.data)
    check_training_examples({**counts, "train_examples": 9, "validation_examples": 1}, config.data)


def test_orphan_clicks_to_retrieval_adds_masked_retrieval_only_examples(job):
    out, counts = job
    config = Config.model_validate(
        {
            "data": {"split_ts": T0 + 8 * DAY, "orphan_clicks_to_retrieval": True},
            "features": {"enabled": ["user_id", "item_id", "device", "hour"]},
        }
    )
    step = out / "preprocess_orphans"
    flagged = run_preprocess(config.job_config(), out / "validate", step, beam_args=IN_PROCESS)
    assert flagged["retrieval_only_examples"] == counts["orphan_clicks"] == 1
    assert (flagged["train_examples"], flagged["validation_examples"]) == (15, 2)
    assert flagged["eval_examples"] == 4
    assert counts["retrieval_only_examples"] == 0
    spec = tft.TFTransformOutput(str(step / "transform_fn")).transformed_feature_spec()
    train = _read_examples(step, "train", spec)
    masked = [e for e in train if float(e["ranking_mask"]) == 0.0]
    assert [(e["user_key"].numpy(), e["item_key"].numpy()) for e in masked] == [(b"u9", b"i9")]
    assert (float(masked[0]["click"]), float(masked[0]["dwell_mask"])) == (1.0, 0.0)
    default_spec = tft.TFTransformOutput(
        str(out / "preprocess" / "transform_fn")
    ).transformed_feature_spec()
    assert "ranking_mask" not in default_spec
