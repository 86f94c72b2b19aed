"""Batch top-K recommendations with Beam RunInference over an exported SavedModel (SPEC §3).

The model is any exported recommender or retriever: its serving signature takes raw user
features and returns, per user, K item ids (the string output) and K values per output
(scores and each task's prediction). The signature itself says which inputs it needs, so
the same job serves every model the export writes. Output: Parquet rows
(user_id, rank, item_id, score, <other outputs>), one per user and rank.
"""

from __future__ import annotations

import csv
import logging
import pathlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

_LOG = logging.getLogger(__name__)


_ARROW_TYPES = {"string": pa.string(), "float32": pa.float32(), "float64": pa.float64()}


class SignatureModelHandler(ModelHandler[dict, PredictionResult, Any]):
    """Loads a SavedModel signature once per worker and feeds it batches of raw rows."""

    def __init__(self, model_dir: str, *, signature: str = "serving_default", max_batch: int = 256):
        self._model_dir = model_dir
        self._signature = signature
        self._max_batch = max_batch

    def load_model(self) -> Any:
        loaded = tf.saved_model.load(self._model_dir)
        if self._signature not in loaded.signatures:
            raise ValueError(
                f"{self._model_dir} has no signature {self._signature!r}; "
                f"signatures: {sorted(loaded.signatures)}"
            )
        return loaded.signatures[self._signature]

    def run_inference(
        self, batch: Sequence[dict], model: Any, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        inputs = {}
        for name, spec in model.structured_input_signature[1].items():
            values = np.asarray([row[name] for row in batch])
            if spec.shape.rank == 2:
                values = values.reshape(-1, 1)
            inputs[name] = tf.constant(values, dtype=spec.dtype)
        outputs = {k: v.numpy() for k, v in model(**inputs).items()}
        for i, row in enumerate(batch):
            yield PredictionResult(row, {k: v[i] for k, v in outputs.items()})

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._max_batch}


def signature_io(model_dir: str, signature: str = "serving_default") -> tuple[dict, dict]:
    """(input name → dtype name, output name → dtype name) of a SavedModel signature."""
    fn = tf.saved_model.load(model_dir).signatures[signature]
    inputs = {k: s.dtype.name for k, s in fn.structured_input_signature[1].items()}
    outputs = {k: s.dtype.name for k, s in fn.structured_outputs.items()}
    return inputs, outputs


def _fill_row(row: dict[str, Any], inputs: dict[str, str], now_ms: int) -> dict[str, Any]:
    filled = {}
    for name, dtype in inputs.items():
        value = row.get(name)
        if value is None:
            # Context the users file does not give: ts is "now"; other values go to the
            # model's OOV / neutral buckets, exactly as an unseen value would at serving.
            value = now_ms if name == "ts" else ("" if dtype == "string" else 0)
        if dtype == "string":
            value = value.decode() if isinstance(value, bytes) else str(value)
        filled[name] = value
    return filled


def _explode(result: PredictionResult, item_key: str, user_key: str) -> Iterator[dict]:
    inference = result.inference
    item_ids = inference[item_key]
    for rank, item in enumerate(item_ids, start=1):
        record = {
            "user_id": str(result.example[user_key]),
            "rank": rank,
            "item_id": item.decode() if isinstance(item, bytes) else str(item),
        }
        for name, values in inference.items():
            if name != item_key and np.ndim(values) == 1 and len(values) == len(item_ids):
                record[_column(name)] = float(values[rank - 1])
        yield record


def _column(output_name: str) -> str:
    return "score" if output_name == "scores" else output_name


@beam.ptransform_fn
def RecommendTopK(  # noqa: N802 - Beam transforms are named like classes
    users: beam.PCollection, model_dir: str, inputs: dict[str, str], item_key: str
) -> beam.PCollection:
    now_ms = int(time.time() * 1000)
    return (
        users
        | "FillInputs" >> beam.Map(_fill_row, inputs, now_ms)
        | "RunInference" >> RunInference(SignatureModelHandler(model_dir))
        | "OneRowPerRank" >> beam.FlatMap(_explode, item_key, "user_id")
    )


def _output_schema(outputs: dict[str, str], item_key: str) -> pa.Schema:
    fields = [("user_id", pa.string()), ("rank", pa.int64()), ("item_id", pa.string())]
    for name, dtype in outputs.items():
        if name != item_key:
            fields.append((_column(name), pa.float64() if dtype != "string" else pa.string()))
    return pa.schema(fields)


def recommend(
    model_dir: pathlib.Path,
    users_file: pathlib.Path,
    out_dir: pathlib.Path,
    beam_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Writes top-K rows for every user of `users_file` (Parquet or CSV with user_id)."""
    if not users_file.exists():
        raise FileNotFoundError(f"--users: no such file: {users_file}")
    inputs, outputs = signature_io(str(model_dir))
    item_keys = [k for k, dtype in outputs.items() if dtype == "string"]
    if "user_id" not in inputs or len(item_keys) != 1:
        raise ValueError(
            f"{model_dir}: expected a recommender or retriever signature taking user_id and "
            f"returning one string output of item ids; inputs {sorted(inputs)}, outputs "
            f"{sorted(outputs)}"
        )
    _check_users_file(users_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    schema = _output_schema(outputs, item_keys[0])
    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
        users = p | "ReadUsers" >> _read_users(users_file)
        _ = (
            users
            | "Recommend" >> RecommendTopK(str(model_dir), inputs, item_keys[0])
            | "Write"
            >> beam.io.WriteToParquet(
                str(out_dir / "recommendations"), schema, file_name_suffix=".parquet"
            )
        )
    _LOG.info("recommendations written", extra={"fields": {"out": str(out_dir)}})
    return {"out": str(out_dir), "inputs": sorted(inputs), "outputs": sorted(outputs)}


def _check_users_file(path: pathlib.Path) -> None:
    if path.suffix == ".parquet":
        columns = pq.read_schema(path).names
    elif path.suffix == ".csv":
        with path.open(newline="") as handle:
            columns = next(csv.reader(handle), [])
    else:
        raise ValueError(f"--users {path}: expected a .parquet or .csv file with a user_id column")
    if "user_id" not in columns:
        raise ValueError(f"--users {path}: no user_id column; columns: {columns}")


def _read_users(path: pathlib.Path) -> beam.PTransform:
    if path.suffix == ".csv":
        return beam.io.ReadFromCsv(str(path), dtype=str) | "AsDicts" >> beam.Map(
            lambda row: row._asdict()
        )
    return beam.io.ReadFromParquet(str(path))
