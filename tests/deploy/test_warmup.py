"""Warm-up file: PredictionLog records TF Serving can parse and replay against the model."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from mtlrec.deploy import warmup


class _Scorer(tf.Module):
    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="user_id"),
            tf.TensorSpec([None], tf.int64, name="ts"),
        ]
    )
    def serve(self, user_id, ts):
        return {"score": tf.cast(tf.strings.length(user_id), tf.float32) + tf.cast(ts, tf.float32)}


def test_records_parse_as_prediction_logs(tmp_path):
    requests = [
        ("serving_default", {"user_id": np.array([b"u1", b"u22"]), "ts": np.array([3, 4])}),
        ("predict_examples", {"examples": np.array([b"\x0a\x00"])}),
    ]
    path = warmup.write_warmup_requests(tmp_path, "mtlrec_ranker", requests)

    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]
    assert len(logs) == 2
    first = logs[0].predict_log.request
    assert first.model_spec.name == "mtlrec_ranker"
    assert first.model_spec.signature_name == "serving_default"
    assert list(first.inputs["user_id"].string_val) == [b"u1", b"u22"]
    assert first.inputs["ts"].dtype == tf.int64.as_datatype_enum
    assert tf.make_ndarray(first.inputs["ts"]).tolist() == [3, 4]
    assert logs[1].predict_log.request.model_spec.signature_name == "predict_examples"


def test_requests_replay_against_a_saved_model(tmp_path):
    module = _Scorer()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    inputs = {"user_id": np.array([b"abc", b"a"]), "ts": np.array([10, 20], dtype=np.int64)}
    warmup.write_warmup_requests(tmp_path, "m", [("serving_default", inputs)])

    loaded = tf.saved_model.load(str(tmp_path))
    replayed = warmup.read_warmup_requests(tmp_path)
    assert len(replayed) == 1
    signature, parsed = replayed[0]
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in parsed.items()})
    np.testing.assert_allclose(outputs["score"].numpy(), [13.0, 21.0])


def test_too_many_requests_is_rejected(tmp_path):
    requests = [("serving_default", {"x": np.zeros(1)})] * (warmup.MAX_WARMUP_RECORDS + 1)
    with pytest.raises(ValueError, match="export.warmup_requests"):
        warmup.write_warmup_requests(tmp_path, "m", requests)


def test_missing_file_says_to_re_export(tmp_path):
    with pytest.raises(ValueError, match="re-run the export"):
        warmup.read_warmup_requests(tmp_path)
