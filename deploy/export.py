"""Export step: the ranker, retriever and recommender SavedModels for TF Serving (SPEC §8).

Each model is written to a temporary directory with its warm-up requests, reloaded and
checked against the in-memory serving functions on real evaluation rows (including every
warm-up request), and only then published as the next integer version.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
import tensorflow_transform as tft

from mtlrec.deploy import signatures, versioning, warmup
from mtlrec.deploy.config import ExportConfig
from mtlrec.deploy.lineage import Lineage
from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import JOINED_COLUMNS, Dtype, Side, feature_set
from mtlrec.features.preprocessing import neutral_default
from mtlrec.models.config import TaskConfig

# Largest absolute difference allowed between the reloaded and the in-memory model.
PARITY_ATOL = 1e-5
# Evaluation rows in one verification batch (on top of the one-row warm-up requests).
_PARITY_ROWS = 256
_NUMPY_DTYPES = {Dtype.STRING: object, Dtype.INT: np.int64, Dtype.FLOAT: np.float32}

Request = tuple[str, dict[str, np.ndarray]]


def model_names(prefix: str) -> dict[str, str]:
    """Role (ranker, retriever, recommender) → served model name."""
    return {role: f"{prefix}_{role}" for role in ("ranker", "retriever", "recommender")}


def export_all(
    model,
    tft_output_dir: pathlib.Path,
    catalog: pa.Table,
    eval_sample: pa.Table,
    export_cfg: ExportConfig,
    features_cfg: FeaturesConfig,
    tasks: Sequence[TaskConfig],
    export_root: pathlib.Path,
    lineage: Lineage | None = None,
) -> dict[str, str]:
    """Exports the three serving models; returns model name → published version directory.

    Each version carries `lineage` (where it came from) in its `assets.extra`.

    Raises:
      ValueError: a catalogue or evaluation column is missing, the catalogue is empty or
        repeats an item, or a written model does not reproduce the in-memory predictions
        (nothing is published for that model).
    """
    fs = feature_set(features_cfg, tuple(t.label for t in tasks if t.label is not None))
    layer = tft.TFTransformOutput(str(tft_output_dir)).transform_features_layer()
    transform = signatures.Transform(layer, fs)
    heads = signatures.Heads(model, tasks, export_cfg.score_weights)
    items = raw_arrays(catalog, signatures.raw_columns(fs, (Side.CANDIDATE,)), "catalog")
    check_catalog(items["item_id"])
    catalogue = signatures.build_catalog(model, transform, items)
    rows = raw_arrays(eval_sample, signatures.pair_columns(fs), "eval_sample")
    if not len(rows["item_id"]):
        raise ValueError("eval_sample: no rows; warm-up requests and verification need some")
    queries = {c: rows[c] for c in signatures.query_columns(fs)}
    names = model_names(export_cfg.model_prefix)
    n = export_cfg.warmup_requests
    built = {
        names["ranker"]: (signatures.ranker(model, transform, heads), _ranker_requests(rows, n)),
        names["retriever"]: (
            signatures.retriever(model, transform, catalogue, export_cfg.top_k),
            _row_requests(queries, n),
        ),
        names["recommender"]: (
            signatures.recommender(
                model, transform, heads, catalogue, export_cfg.retrieve_n, export_cfg.top_k
            ),
            _row_requests(queries, n),
        ),
    }
    published = {}
    for name, (serving, requests) in built.items():
        path = versioning.publish_version(
            pathlib.Path(export_root) / name,
            write=functools.partial(_write, serving, name, requests, lineage),
            verify=functools.partial(verify, serving, name, _parity_requests(serving, rows)),
        )
        published[name] = str(path)
    return published


def raw_arrays(table: pa.Table, columns: Sequence[str], source: str) -> dict[str, np.ndarray]:
    """Raw columns of a table as numpy arrays of the raw dtypes; nulls become neutral values.

    Raises:
      ValueError: a column is missing; the message names the table and its columns.
    """
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{source}: missing raw column(s) {missing}; it has {table.column_names}; "
            "re-run the preprocess step with the same features.enabled"
        )
    out = {}
    for column in columns:
        values = pc.fill_null(table.column(column), neutral_default(column))
        dtype = _NUMPY_DTYPES[JOINED_COLUMNS[column]]
        out[column] = values.to_numpy(zero_copy_only=False).astype(dtype)
    return out


def serialize_examples(rows: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows of raw columns as serialized tf.Example protos (the `predict_examples` input)."""

    def feature(value) -> tf.train.Feature:
        if isinstance(value, str | bytes):
            data = value.encode() if isinstance(value, str) else value
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
        if isinstance(value, np.integer):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))

    count = len(next(iter(rows.values())))
    examples = [
        tf.train.Example(
            features=tf.train.Features(feature={c: feature(v[i]) for c, v in rows.items()})
        ).SerializeToString()
        for i in range(count)
    ]
    return np.array(examples, dtype=object)


def verify(
    serving: signatures.ServingModel, name: str, requests: Sequence[Request], path: pathlib.Path
) -> None:
    """Reloads the written model and checks it against the in-memory serving functions.

    Every warm-up request and every `requests` entry must give the same outputs (within
    PARITY_ATOL; ids exactly).

    Raises:
      ValueError: a signature is missing or an output differs; names the output.
    """
    loaded = tf.saved_model.load(str(path))
    if set(loaded.signatures) != set(serving.signatures):
        raise ValueError(
            f"{name}: reloaded signatures {sorted(loaded.signatures)} differ from "
            f"{sorted(serving.signatures)}"
        )
    for signature, inputs in [*warmup.read_warmup_requests(path), *requests]:
        feed = {k: tf.constant(v) for k, v in inputs.items()}
        expected = serving.signatures[signature](**feed)
        actual = loaded.signatures[signature](**feed)
        for output, want in expected.items():
            _check_equal(f"{name}/{signature}/{output}", want.numpy(), actual[output].numpy())


def _write(
    serving: signatures.ServingModel,
    name: str,
    requests: Sequence[Request],
    lineage: Lineage | None,
    path: pathlib.Path,
) -> None:
    tf.saved_model.save(serving.module, str(path), signatures=serving.signatures)
    warmup.write_warmup_requests(path, name, requests)
    if lineage is not None:
        lineage.write(path)


def _check_equal(label: str, want: np.ndarray, got: np.ndarray) -> None:
    if want.shape != got.shape:
        raise ValueError(f"{label}: reloaded shape {got.shape} != in-memory {want.shape}")
    if want.dtype == object:
        if not np.array_equal(want, got):
            raise ValueError(f"{label}: reloaded ids differ from the in-memory model")
        return
    diff = float(np.max(np.abs(want - got), initial=0.0))
    if not diff <= PARITY_ATOL:
        raise ValueError(f"{label}: reloaded model differs from in-memory by {diff:g}")


def check_catalog(item_ids: np.ndarray) -> None:
    """Raises ValueError for an empty catalogue, an empty id or a repeated id."""
    if not len(item_ids):
        raise ValueError("catalog: no items; the retriever needs at least one")
    empty = np.flatnonzero(item_ids == "")
    if len(empty):
        raise ValueError(f"catalog: row {int(empty[0])} has an empty item_id")
    unique, counts = np.unique(item_ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"catalog: item_id {unique[counts > 1][0]!r} appears more than once")


def _take(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[rows] for c, v in columns.items()}


def _ranker_requests(rows: Mapping[str, np.ndarray], n: int) -> list[Request]:
    """One evaluation row per request, alternating raw columns and serialized tf.Example."""
    requests = []
    for i in range(n):
        row = _take(rows, np.array([i % len(rows["item_id"])]))
        if i % 2:
            examples = serialize_examples(row)
            requests.append((signatures.PREDICT_EXAMPLES, {signatures.EXAMPLES: examples}))
        else:
            requests.append((signatures.SERVING_DEFAULT, row))
    return requests


def _row_requests(queries: Mapping[str, np.ndarray], n: int) -> list[Request]:
    count = len(next(iter(queries.values())))
    return [(signatures.SERVING_DEFAULT, _take(queries, np.array([i % count]))) for i in range(n)]


def _parity_requests(serving: signatures.ServingModel, rows: Mapping[str, np.ndarray]) -> list:
    """One batch of evaluation rows per signature, in that signature's input form."""
    batch = _take(rows, np.arange(min(_PARITY_ROWS, len(rows["item_id"]))))
    requests = []
    for name, function in serving.signatures.items():
        if name == signatures.PREDICT_EXAMPLES:
            requests.append((name, {signatures.EXAMPLES: serialize_examples(batch)}))
        else:
            inputs = [spec.name for spec in tf.nest.flatten(function.structured_input_signature)]
            requests.append((name, {c: batch[c] for c in inputs}))
    return requests
