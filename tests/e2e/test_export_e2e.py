"""Export end to end on a small real run: generate → validate → preprocess → train → export.

The exported models are checked against references computed here from the in-memory model
and the tf.Transform output (not through mtlrec.deploy.signatures): in a fresh Python process that
imports neither the project nor tf.Transform, on every warm-up request, and on unseen ids.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import types

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from mtlrec.deploy import export
from mtlrec.deploy.config import ExportConfig
from mtlrec.features.declarations import Side, feature_set
from mtlrec.features.preprocessing import raw_feature_spec

pytestmark = pytest.mark.slow

ATOL = 1e-5
BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
EXPORT = ExportConfig(top_k=5, retrieve_n=12, warmup_requests=6)
UNSEEN = {"user_id": "user-never-seen", "item_id": "item-never-seen"}
PROJECT = ("features", "models", "deploy", "pipeline", "bench", "tensorflow_transform")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import tensorflow_transform as tft

    from mtlrec.config import Config
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.models.model import load_model
    from mtlrec.models.train import train
    from mtlrec.pipeline.preprocess import run_preprocess, run_validate

    root = tmp_path_factory.mktemp("export_run")
    config = Config.model_validate(
        {"training": {"batch_size": 64, "epochs": 1, "steps_per_epoch": 15}, "export": EXPORT}
    )
    generate(root / "data", users=60, items=40, days=4, seed=5, progress=False)
    run_validate(config.job_config(), root / "data", root / "validate", beam_args=BEAM_ARGS)
    run_preprocess(config.job_config(), root / "validate", root / "preprocess", beam_args=BEAM_ARGS)
    train(
        config.tasks,
        config.model,
        config.training,
        config.features,
        root / "preprocess",
        root / "train",
    )
    tft_dir = root / "preprocess" / "transform_fn"
    model = load_model(root / "train" / "model", tft_dir)
    catalog = pq.read_table(root / "preprocess" / "catalog.parquet")
    eval_sample = pq.read_table(root / "preprocess" / "eval_sample.parquet")
    args = (model, tft_dir, catalog, eval_sample, EXPORT, config.features, config.tasks)
    published = export.export_all(*args, root / "serving")
    fs = feature_set(config.features, tuple(t.label for t in config.tasks if t.label))
    return types.SimpleNamespace(
        root=root,
        config=config,
        args=args,
        model=model,
        fs=fs,
        tft=tft.TFTransformOutput(str(tft_dir)),
        published=published,
        names=export.model_names(EXPORT.model_prefix),
        rows=export.raw_arrays(eval_sample, _columns(fs, Side.QUERY, Side.CANDIDATE), "eval"),
        items=export.raw_arrays(catalog, _columns(fs, Side.CANDIDATE), "catalog"),
    )


def _columns(fs, *sides):
    return tuple(dict.fromkeys(f.source for f in fs.features if f.side in sides))


# ----- references: the in-memory model on tf.Transform outputs ------------------------------


def _transformed(run, raw, *sides):
    feed = {c: tf.constant(raw[c]) for c in _columns(run.fs, *sides)}
    if Side.QUERY in sides:
        position = run.config.features.serving_position
        feed["position"] = tf.fill([len(next(iter(raw.values())))], tf.constant(position, tf.int64))
    out = run.tft.transform_raw_features(feed)
    wanted = [f.name for f in run.fs.features if f.side in sides or f.side is Side.BIAS]
    return {name: out[name] for name in wanted if name in out}


def _ranked(run, features):
    p = {k: v.numpy() for k, v in run.model.predict_tasks(features).items()}
    # Default export.score_weights: click 1, purchase 2.
    return {
        "p_click": p["click"],
        "p_purchase": p["purchase"],
        "dwell_s": np.expm1(p["dwell"]),
        "score": p["click"] + 2.0 * p["purchase"],
    }


def _ranker_reference(run, raw):
    return _ranked(run, _transformed(run, raw, Side.QUERY, Side.CANDIDATE))


def _catalogue(run):
    items = _transformed(run, run.items, Side.CANDIDATE)
    return items, run.model.candidate_embedding(items).numpy()


def _check_retriever(run, raw, got, k):
    _, item_vectors = _catalogue(run)
    query = run.model.query_embedding(_transformed(run, raw, Side.QUERY)).numpy()
    scores = query @ item_vectors.T
    position = {item: i for i, item in enumerate(run.items["item_id"])}
    for b in range(len(query)):
        best = np.sort(scores[b])[::-1][:k]
        np.testing.assert_allclose(got["scores"][b], best, atol=ATOL)
        rows = [position[i.decode()] for i in got["item_ids"][b]]
        np.testing.assert_allclose(scores[b, rows], got["scores"][b], atol=ATOL)


def _check_recommender(run, raw, got, n, k):
    items, item_vectors = _catalogue(run)
    query = _transformed(run, raw, Side.QUERY)
    retrieval = run.model.query_embedding(query).numpy() @ item_vectors.T
    for b in range(len(retrieval)):
        candidates = np.argsort(-retrieval[b], kind="stable")[:n]
        pairs = {name: tf.gather(v, np.full(n, b)) for name, v in query.items()}
        pairs.update({name: tf.gather(v, candidates) for name, v in items.items()})
        ranked = _ranked(run, pairs)
        order = np.argsort(-ranked["score"], kind="stable")[:k]
        np.testing.assert_allclose(got["score"][b], ranked["score"][order], atol=ATOL)
        by_id = {run.items["item_id"][c]: j for j, c in enumerate(candidates)}
        chosen = [by_id[i.decode()] for i in got["item_ids"][b]]
        for output, values in ranked.items():
            np.testing.assert_allclose(got[output][b], values[chosen], atol=ATOL)
        np.testing.assert_allclose(
            got["retrieval_score"][b], retrieval[b, candidates[chosen]], atol=ATOL
        )


def _check(run, role, signature, inputs, got):
    if role == "ranker":
        if signature == "predict_examples":
            spec = raw_feature_spec(_columns(run.fs, Side.QUERY, Side.CANDIDATE))
            inputs = {
                k: v.numpy() for k, v in tf.io.parse_example(inputs["examples"], spec).items()
            }
        for output, want in _ranker_reference(run, inputs).items():
            np.testing.assert_allclose(got[output], want, atol=ATOL, err_msg=output)
    elif role == "retriever":
        _check_retriever(run, inputs, got, EXPORT.top_k)
    else:
        _check_recommender(run, inputs, got, EXPORT.retrieve_n, EXPORT.top_k)


# ----- requests built from evaluation rows, with unseen ids -----------------------------------


def _eval_batch(run, columns, size=16):
    batch = {c: run.rows[c][:size].copy() for c in columns}
    for column, unseen in UNSEEN.items():
        if column in batch:
            batch[column][0] = unseen
    return batch


def _requests(run):
    pair = _eval_batch(run, _columns(run.fs, Side.QUERY, Side.CANDIDATE))
    query = _eval_batch(run, _columns(run.fs, Side.QUERY))
    return {
        "ranker": {
            "serving_default": pair,
            "predict_examples": {"examples": export.serialize_examples(pair)},
        },
        "retriever": {"serving_default": query},
        "recommender": {"serving_default": query},
    }


_FRESH = textwrap.dedent(
    """
    import base64, json, sys
    import numpy as np
    import tensorflow as tf

    requests = json.load(sys.stdin)
    results = {}
    for role, path in json.loads(sys.argv[1]).items():
        loaded = tf.saved_model.load(path)
        results[role] = {}
        for signature, inputs in requests[role].items():
            feed = {
                k: tf.constant([base64.b64decode(x) for x in v] if k == "examples" else v)
                for k, v in inputs.items()
            }
            out = loaded.signatures[signature](**feed)
            results[role][signature] = {
                k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().ravel().tolist()]
                + [list(v.shape)]
                for k, v in out.items()
            }
    print(json.dumps({"results": results, "modules": sorted(sys.modules)}))
    """
)


def _to_json(inputs):
    out = {}
    for key, values in inputs.items():
        if key == "examples":
            out[key] = [base64.b64encode(x).decode() for x in values]
        else:
            out[key] = values.tolist()
    return out


def test_every_signature_matches_the_in_memory_model_in_a_fresh_process(run):
    requests = _requests(run)
    paths = {role: run.published[name] for role, name in run.names.items()}
    payload = {role: {s: _to_json(i) for s, i in sigs.items()} for role, sigs in requests.items()}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(paths)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=run.root,
        env=env,
        check=True,
        timeout=300,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    leaked = [m for m in answer["modules"] if m.split(".")[0] in PROJECT]
    assert leaked == []
    for role, signatures in requests.items():
        assert sorted(answer["results"][role]) == sorted(signatures)
        for signature, inputs in signatures.items():
            got = {}
            for output, flat in answer["results"][role][signature].items():
                values, shape = flat[:-1], flat[-1]
                array = np.array(values, dtype=object if output == "item_ids" else np.float64)
                got[output] = array.reshape(shape)
            if "item_ids" in got:
                got["item_ids"] = np.vectorize(str.encode, otypes=[object])(got["item_ids"])
            _check(run, role, signature, inputs, got)


def test_warmup_requests_replay_against_the_loaded_models(run):
    for role, name in run.names.items():
        path = os.path.join(run.published[name], "assets.extra", "tf_serving_warmup_requests")
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        assert len(records) == EXPORT.warmup_requests
        loaded = tf.saved_model.load(run.published[name])
        seen = set()
        for record in records:
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            assert request.model_spec.name == name
            signature = request.model_spec.signature_name
            seen.add(signature)
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
            _check(run, role, signature, inputs, {k: v.numpy() for k, v in out.items()})
        assert seen == set(loaded.signatures)


def test_unseen_ids_are_served(run):
    batch = _eval_batch(run, _columns(run.fs, Side.QUERY, Side.CANDIDATE), 2)
    known = {c: run.tft.vocabulary_by_name(c)[0].decode() for c in UNSEEN}
    for column in UNSEEN:
        batch[column][1] = known[column]
    pair = {c: tf.constant(v) for c, v in batch.items()}
    out = tf.saved_model.load(run.published[run.names["ranker"]]).signatures["serving_default"](
        **pair
    )
    assert all(np.isfinite(v.numpy()).all() for v in out.values())
    for column in UNSEEN:
        vocab = run.tft.vocabulary_size_by_name(column)
        index = run.tft.transform_raw_features({column: pair[column]})[column].numpy()
        assert vocab <= index[0] < vocab + run.config.features.id_oov_buckets
        assert index[1] == 0
    query = {
        k: tf.constant(v) for k, v in _eval_batch(run, _columns(run.fs, Side.QUERY), 1).items()
    }
    recommender = tf.saved_model.load(run.published[run.names["recommender"]])
    out = recommender.signatures["serving_default"](**query)
    assert out["item_ids"].shape == (1, EXPORT.top_k)
    assert set(out["item_ids"].numpy().ravel().astype(str)) <= set(run.items["item_id"])
    assert np.isfinite(out["score"].numpy()).all()


_KILLED = textwrap.dedent(
    """
    import pathlib, sys, time
    import pyarrow.parquet as pq
    from mtlrec.deploy import export, versioning
    from mtlrec.models.model import load_model
    from mtlrec.config import Config

    root = pathlib.Path(sys.argv[1])
    config = Config.model_validate_json((root / "config.json").read_text())

    def stop_before_rename(path):
        print("stopped", flush=True)
        time.sleep(600)

    # Runs after the version is written and verified, right before the rename.
    versioning._fsync_tree = stop_before_rename
    tft_dir = root / "preprocess" / "transform_fn"
    export.export_all(
        load_model(root / "train" / "model", tft_dir),
        tft_dir,
        pq.read_table(root / "preprocess" / "catalog.parquet"),
        pq.read_table(root / "preprocess" / "eval_sample.parquet"),
        config.export,
        config.features,
        config.tasks,
        root / "serving",
    )
    """
)


def test_killed_export_leaves_no_partial_version_and_the_next_one_is_complete(run):
    (run.root / "config.json").write_text(run.config.model_dump_json())
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(run.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        lines = iter(child.stdout.readline, "")
        assert any(line.strip() == "stopped" for line in lines)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    serving = run.root / "serving"
    for name in run.names.values():
        assert sorted(p.name for p in (serving / name).iterdir() if not p.name.startswith(".")) == [
            "1"
        ]
    leftovers = [p for p in (serving / run.names["ranker"]).iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1

    again = export.export_all(*run.args, serving)
    for name, path in again.items():
        assert path == str(serving / name / "2")
        assert sorted(p.name for p in (serving / name).iterdir()) == ["1", "2"]
        assert tf.saved_model.load(path).signatures["serving_default"] is not None
