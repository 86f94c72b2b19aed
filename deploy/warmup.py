"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests` (SPEC §8).

TF Serving replays this file (a TFRecord of PredictionLog protos) when it loads a version,
before the version takes traffic, so the first real requests do not pay for graph
initialisation. The requests are built by the export from real evaluation rows.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
# TF Serving refuses to load a model whose warm-up file holds more records than this.
MAX_WARMUP_RECORDS = 1000


def warmup_path(saved_model_dir: pathlib.Path) -> pathlib.Path:
    return saved_model_dir / ASSETS_EXTRA / WARMUP_FILE


def write_warmup_requests(
    saved_model_dir: pathlib.Path,
    model_name: str,
    requests: Sequence[tuple[str, Mapping[str, np.ndarray]]],
) -> pathlib.Path:
    """Writes (signature name, inputs) pairs as PredictionLog records; returns the file.

    Raises:
      ValueError: more requests than TF Serving accepts; lower export.warmup_requests.
    """
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"{len(requests)} warm-up requests for {model_name}: TF Serving accepts at most "
            f"{MAX_WARMUP_RECORDS}; lower export.warmup_requests"
        )
    path = warmup_path(saved_model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(
    saved_model_dir: pathlib.Path,
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Parses the warm-up file back into (signature name, inputs) pairs.

    Raises:
      ValueError: the file is missing or holds a record that is not a predict request.
    """
    path = warmup_path(saved_model_dir)
    if not path.is_file():
        raise ValueError(f"{path}: no warm-up file; re-run the export")
    requests = []
    for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {index} is not a predict_log")
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests
