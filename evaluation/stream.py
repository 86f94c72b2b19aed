"""The evaluation split and the catalogue, streamed through a trained model (SPEC §9).

Nothing here re-implements preprocessing: the eval split is read from the transformed
TFRecords with `mtlrec.models.data.make_dataset`, and catalogue items are transformed by the run's
own tf.Transform graph (`mtlrec.deploy.signatures.build_catalog`), so the evaluated features are
exactly the ones the model trains and serves on. The raw test rows (`eval_raw-*.parquet`) are
read here too: the last blessed model streams them through its own transform graph
(`mtlrec.evaluation.rescore`, `stream_batches`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
import tensorflow_transform as tft

from mtlrec.deploy.signatures import Transform, build_catalog, raw_columns
from mtlrec.features.declarations import PASSTHROUGH, FeatureSet, Side
from mtlrec.features.preprocessing import neutral_default
from mtlrec.models.data import make_dataset

TRANSFORM_DIR = "transform_fn"
TRAIN_PATTERN = "train-*.tfrecord.gz"
EVAL_PATTERN = "eval-*.tfrecord.gz"
CATALOG = "catalog.parquet"
RAW_EVAL_PATTERN = "eval_raw-*.parquet"
EVAL_BATCH = 2048
QUERY_BATCH = 1024


def decode(values: np.ndarray) -> np.ndarray:
    """Raw string keys (bytes from TensorFlow) as a str object array."""
    flat = np.asarray(values, dtype=object).reshape(-1)
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in flat], dtype=object)


def _column(value) -> np.ndarray:
    array = value.numpy()
    return decode(array) if array.dtype == object else array


@dataclasses.dataclass
class EvalRows:
    """The eval split as arrays, one entry per impression.

    Attributes:
      columns: passthrough keys (user_key, item_key, device_key, event_ts) and labels.
      predictions: ranking task name -> model output per row (probability or label space).
      query_embeddings: user-tower output for the rows flagged by `query_label`, else None.
      query_rows: indices of the rows behind `query_embeddings`.
    """

    columns: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    query_embeddings: np.ndarray | None
    query_rows: np.ndarray

    @property
    def size(self) -> int:
        return len(next(iter(self.columns.values())))


def stream_eval(
    model,
    preprocess_dir: pathlib.Path,
    labels: Sequence[str],
    *,
    with_queries: bool,
    query_label: str | None,
) -> EvalRows:
    """Predicts every row of the run's transformed eval split (`stream_batches`)."""
    preprocess_dir = pathlib.Path(preprocess_dir)
    dataset = make_dataset(
        preprocess_dir / EVAL_PATTERN,
        preprocess_dir / TRANSFORM_DIR,
        EVAL_BATCH,
        shuffle=False,
        seed=0,
    )
    return stream_batches(
        model,
        dataset,
        labels,
        with_queries=with_queries,
        query_label=query_label,
        where=str(preprocess_dir / EVAL_PATTERN),
    )


def stream_batches(
    model,
    batches: Iterable[Mapping[str, tf.Tensor]],
    labels: Sequence[str],
    *,
    with_queries: bool,
    query_label: str | None,
    where: str,
) -> EvalRows:
    """Predicts every row of `batches` (transformed features) with `model.predict_tasks`,
    logged position included; `where` names the rows in errors.

    `with_queries` also embeds each row's user (and request context) with the user tower,
    for the rows where `query_label` is 1 (every row when it is None).
    """
    keep = [*PASSTHROUGH, *labels]
    columns: dict[str, list] = {}
    predictions: dict[str, list] = {}
    queries: list[np.ndarray] = []
    query_rows: list[np.ndarray] = []
    offset = 0
    for batch in batches:
        for name in keep:
            if name in batch:
                columns.setdefault(name, []).append(_column(batch[name]))
        for task, value in model.predict_tasks(batch).items():
            if model.task_kinds[task].has_head:
                predictions.setdefault(task, []).append(value.numpy().astype(np.float64))
        rows = len(columns["user_key"][-1])
        if with_queries:
            flagged = np.ones(rows, bool) if query_label is None else batch[query_label].numpy() > 0
            if flagged.any():
                queries.append(model.query_embedding(batch).numpy()[flagged])
                query_rows.append(offset + np.flatnonzero(flagged))
        offset += rows
    if offset == 0:
        raise ValueError(f"the eval split {where} has no rows")
    missing = sorted(set(labels) - set(columns))
    if missing:
        raise ValueError(
            f"the eval split {where} has no {missing} column; re-run preprocess with the "
            "current tasks"
        )
    return EvalRows(
        columns={k: np.concatenate(v) for k, v in columns.items()},
        predictions={k: np.concatenate(v) for k, v in predictions.items()},
        query_embeddings=np.concatenate(queries) if queries else None,
        query_rows=np.concatenate(query_rows) if query_rows else np.empty(0, np.int64),
    )


def raw_eval_files(preprocess_dir: pathlib.Path) -> list[pathlib.Path]:
    """The shards of a run's test examples as they were before tf.Transform."""
    return sorted(pathlib.Path(preprocess_dir).glob(RAW_EVAL_PATTERN))


def read_raw_eval(preprocess_dir: pathlib.Path) -> pa.Table:
    """Every raw test example of a run (the preprocess job's `eval_raw-*.parquet`).

    Raises:
      ValueError: the run's preprocess output has none (the step ran before it wrote them).
    """
    files = raw_eval_files(preprocess_dir)
    if not files:
        raise ValueError(
            f"{pathlib.Path(preprocess_dir) / RAW_EVAL_PATTERN}: no raw test examples; "
            "re-run the preprocess step (mtlrec run --from preprocess)"
        )
    return pa.concat_tables(pq.read_table(f) for f in files)


def read_training_columns(preprocess_dir: pathlib.Path, names: Sequence[str]) -> dict:
    """Selected transformed columns of the training split (passthrough keys, labels)."""
    preprocess_dir = pathlib.Path(preprocess_dir)
    spec = tft.TFTransformOutput(str(preprocess_dir / TRANSFORM_DIR)).transformed_feature_spec()
    wanted = {n: spec[n] for n in names if n in spec}
    files = sorted(tf.io.gfile.glob(str(preprocess_dir / TRAIN_PATTERN)))
    if not files:
        raise ValueError(f"no training split at {preprocess_dir / TRAIN_PATTERN}: run preprocess")
    dataset = (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .batch(8192)
        .map(lambda s: tf.io.parse_example(s, wanted), num_parallel_calls=tf.data.AUTOTUNE)
    )
    parts: dict[str, list] = {n: [] for n in wanted}
    for batch in dataset:
        for name, value in batch.items():
            parts[name].append(_column(tf.reshape(value, [-1])))
    return {n: np.concatenate(v) for n, v in parts.items() if v}


@dataclasses.dataclass(frozen=True)
class CatalogueEmbeddings:
    item_ids: np.ndarray
    embeddings: np.ndarray


def catalogue_ids(preprocess_dir: pathlib.Path) -> np.ndarray:
    """Raw item ids of `catalog.parquet`, in file order (the catalogue index of an item)."""
    path = pathlib.Path(preprocess_dir) / CATALOG
    if not path.exists():
        raise ValueError(f"{path} not found: run the preprocess step first")
    ids = pq.read_table(path, columns=["item_id"]).column("item_id").to_pylist()
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: item_id must be unique, one row per catalogue item")
    return np.array(ids, dtype=object)


def embed_catalogue(
    model, preprocess_dir: pathlib.Path, transform_dir: pathlib.Path
) -> CatalogueEmbeddings:
    """Every item of the run's `catalog.parquet`, transformed by the tf.Transform graph of
    `transform_dir` (the model's own) and embedded by the item tower."""
    preprocess_dir = pathlib.Path(preprocess_dir)
    path = preprocess_dir / CATALOG
    if not path.exists():
        raise ValueError(f"{path} not found: run the preprocess step first")
    fs: FeatureSet = model.feature_set
    columns = ("item_id", *raw_columns(fs, (Side.CANDIDATE,)))
    table = pq.read_table(path)
    absent = sorted(set(columns) - set(table.column_names))
    if absent:
        raise ValueError(f"{path}: missing item columns {absent}; re-run the preprocess step")
    items = {c: filled(table.column(c).to_pandas(), c) for c in dict.fromkeys(columns)}
    layer = tft.TFTransformOutput(str(transform_dir)).transform_features_layer()
    catalog = build_catalog(model, Transform(layer, fs), items)
    return CatalogueEmbeddings(decode(catalog.item_ids), catalog.embeddings.numpy())


def filled(series, column: str) -> np.ndarray:
    """A catalogue column with nulls replaced by the transform's neutral value ("" or NaN)."""
    default = neutral_default(column)
    if isinstance(default, str):
        return series.fillna(default).astype(str).to_numpy(dtype=object)
    if isinstance(default, int):
        return series.fillna(default).to_numpy(dtype=np.int64)
    return series.to_numpy(dtype=np.float32, na_value=np.nan)


def top_k(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """[queries, k] catalogue indices by descending dot product, scored in batches."""
    k = min(k, items.shape[0])
    item_matrix = tf.constant(items, tf.float32)
    out = []
    for start in range(0, queries.shape[0], QUERY_BATCH):
        q = tf.constant(queries[start : start + QUERY_BATCH], tf.float32)
        out.append(tf.math.top_k(tf.matmul(q, item_matrix, transpose_b=True), k=k).indices.numpy())
    return np.concatenate(out) if out else np.empty((0, k), np.int64)
