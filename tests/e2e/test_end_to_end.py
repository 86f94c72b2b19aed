"""`mtlrec run` end to end on a small synthetic data set, through the real CLI.

One module-scoped run feeds several checks: the manifest's counts equal the generator's
ground truth, the accounting invariant holds, every step is done, the metrics have the
stable keys, blessed models are pushed for TF Serving, and a rerun skips every step.
"""

import json
import math
import pathlib
import shutil

import pytest

from mtlrec import steps as steps_module
from mtlrec.cli import main
from mtlrec.config import load_config
from mtlrec.manifest import invariant_holds
from mtlrec.models.train import train

pytestmark = pytest.mark.slow

SMALL = [
    "--set", "data.generate.users=300",
    "--set", "data.generate.items=150",
    "--set", "data.generate.days=6",
    "--set", "training.epochs=2",
    "--set", "training.batch_size=256",
    "--set", "evaluation.baselines=[popularity]",
    "--set", "evaluation.min_metrics={}",
    "--set", "evaluation.beat_popularity=false",
    "--beam-arg=--runner=FnApiRunner",
    "--beam-arg=--direct_running_mode=in_memory",
    "--beam-arg=--direct_num_workers=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    workdir = tmp_path_factory.mktemp("e2e") / "work"
    assert main(["run", "--workdir", str(workdir), *SMALL]) == 0
    return workdir


def _manifest(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "manifest.json").read_text())


def test_counts_equal_the_generators_truth(workdir):
    truth = json.loads((workdir / "data" / "truth.json").read_text())["counts"]
    counts = _manifest(workdir)["counts"]
    for key in (
        "events_read",
        "duplicates",
        "rejected",
        "impressions",
        "clicks_joined",
        "purchases_attributed",
        "orphan_clicks",
        "orphan_purchases",
        "eval_examples",
    ):
        assert counts[key] == truth[key], key
    # The generator's training span is the product's train and validation splits.
    assert counts["train_examples"] + counts["validation_examples"] == truth["train_examples"]
    assert counts["validation_examples"] > 0
    assert invariant_holds(counts)


def test_every_step_is_done_and_timed(workdir):
    steps = _manifest(workdir)["steps"]
    assert set(steps) == {"validate", "preprocess", "train", "evaluate", "bless", "export", "push"}
    for name, step in steps.items():
        assert step["status"] == "done", name
        assert step["seconds"] >= 0


def test_metrics_have_the_stable_keys(workdir):
    manifest = _manifest(workdir)
    metrics = manifest["metrics"]
    for task, keys in {
        "click": ("auc", "gauc", "logloss", "ece", "calibration_ratio"),
        "purchase": ("auc", "gauc", "logloss", "ece", "calibration_ratio"),
        "dwell": ("rmse_s", "mae_s"),
        "retrieval": ("recall@10", "recall@50", "recall@100", "ndcg@10", "ndcg@100", "hitrate@10"),
    }.items():
        for key in keys:
            assert math.isfinite(metrics[task][key]), f"{task}.{key}"
    assert "popularity" in metrics["baselines"]
    run_dir = workdir / "runs" / manifest["run_id"]
    assert json.loads((run_dir / "evaluate" / "metrics.json").read_text()) == metrics
    assert (run_dir / "evaluate" / "report.html").stat().st_size > 10_000


def test_blessed_models_are_pushed_as_versioned_savedmodels(workdir):
    manifest = _manifest(workdir)
    assert manifest["blessed"] is True
    assert set(manifest["models"]) == {"mtlrec_ranker", "mtlrec_retriever", "mtlrec_recommender"}
    for path in manifest["models"].values():
        version = pathlib.Path(path)
        assert version.parent.parent == workdir / "serving"
        assert version.name.isdigit()
        assert (version / "saved_model.pb").exists()
        assert (version / "assets.extra" / "tf_serving_warmup_requests").exists()


def test_rerun_skips_every_step(workdir):
    assert main(["run", "--workdir", str(workdir), *SMALL]) == 0
    steps = _manifest(workdir)["steps"]
    assert {s["status"] for s in steps.values()} == {"skipped"}


def test_a_changed_export_value_reruns_only_export_and_push(workdir):
    assert main(["run", "--workdir", str(workdir), *SMALL, "--set", "export.top_k=5"]) == 0
    manifest = _manifest(workdir)
    statuses = {name: step["status"] for name, step in manifest["steps"].items()}
    assert statuses == {
        "validate": "skipped",
        "preprocess": "skipped",
        "train": "skipped",
        "evaluate": "skipped",
        "bless": "skipped",
        "export": "done",
        "push": "done",
    }
    assert pathlib.Path(manifest["models"]["mtlrec_retriever"]).name == "2"


def test_a_failed_step_resumes_with_earlier_steps_skipped(tmp_path, monkeypatch):
    workdir = tmp_path / "work"
    real_train = steps_module.train

    def crashing_train(*args, **kwargs):
        raise RuntimeError("injected crash in training")

    monkeypatch.setattr(steps_module, "train", crashing_train)
    assert main(["run", "--workdir", str(workdir), *SMALL]) == 1
    steps = _manifest(workdir)["steps"]
    assert steps["train"]["status"] == "failed"
    assert steps["train"]["error"] == "injected crash in training"
    assert {steps["validate"]["status"], steps["preprocess"]["status"]} == {"done"}

    monkeypatch.setattr(steps_module, "train", real_train)
    assert main(["run", "--workdir", str(workdir), *SMALL]) == 0
    steps = _manifest(workdir)["steps"]
    assert steps["validate"]["status"] == steps["preprocess"]["status"] == "skipped"
    assert {steps[s]["status"] for s in ("train", "evaluate", "export", "push")} == {"done"}


def test_batch_recommendations_equal_the_exported_recommender(workdir, tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    manifest = _manifest(workdir)
    model_dir = manifest["models"]["mtlrec_recommender"]
    run_dir = workdir / "runs" / manifest["run_id"]
    query = ["user_id", "device", "country", "age_bucket", "ts"]
    sample = pq.read_table(run_dir / "preprocess" / "eval_sample.parquet").select(query)
    first_per_user = {row["user_id"]: row for row in reversed(sample.to_pylist())}
    requested = list(first_per_user.values())[:5]
    users = tmp_path / "users.parquet"
    pq.write_table(pa.Table.from_pylist(requested, schema=sample.schema), users)

    out = tmp_path / "recs"
    assert main(["recommend", "--model", model_dir, "--users", str(users), "--out", str(out)]) == 0

    rows = pa.concat_tables(pq.read_table(f) for f in sorted(out.glob("*.parquet"))).to_pylist()
    catalogue = set(
        pq.read_table(run_dir / "preprocess" / "catalog.parquet")["item_id"].to_pylist()
    )
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    assert len({r["user_id"] for r in rows}) == len(requested)
    for row in requested:
        mine = sorted((r for r in rows if r["user_id"] == row["user_id"]), key=lambda r: r["rank"])
        direct = serve(**{c: tf.constant([row[c]]) for c in query})
        k = direct["item_ids"].shape[1]
        assert [r["rank"] for r in mine] == list(range(1, k + 1))
        assert {r["item_id"] for r in mine} <= catalogue
        scores = [r["score"] for r in mine]
        assert scores == sorted(scores, reverse=True)
        assert [r["item_id"] for r in mine] == [i.decode() for i in direct["item_ids"][0].numpy()]
        for name in ("score", "p_click", "p_purchase", "dwell_s"):
            np.testing.assert_allclose(
                [r[name] for r in mine], direct[name][0].numpy(), rtol=1e-5, atol=1e-6
            )


def test_training_never_reads_a_test_example(workdir, tmp_path):
    """Every test-split file is replaced by garbage: training must not notice."""
    config = load_config(overrides=[SMALL[i + 1] for i, a in enumerate(SMALL) if a == "--set"])
    run_dir = workdir / "runs" / _manifest(workdir)["run_id"]
    preprocess = tmp_path / "preprocess"
    shutil.copytree(run_dir / "preprocess", preprocess)
    test_files = sorted(preprocess.glob("eval-*.tfrecord.gz"))
    assert test_files
    for path in test_files:
        path.write_bytes(b"not a TFRecord")
    summary = train(
        config.tasks,
        config.model,
        config.training.model_copy(update={"epochs": 1}),
        config.features,
        preprocess,
        tmp_path / "train",
    )
    assert summary["steps"] > 0
    assert set(summary["input"]) == {"train", "validation"}
