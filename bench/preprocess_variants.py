"""The three jobs bench.preprocess compares, each run alone in its own child process.

- `mtlrec`: the product's validate + preprocess steps as `mtlrec run` runs them, one Beam job
  (`mtlrec.pipeline.preprocess.run_validate_and_preprocess`), default features (eleven).
- `mtlrec_4f`: the same steps with the four features of the baseline's setting.
- `tft`: bare tf.Transform on the Arrow path (issue 3): ReadFromParquetBatched → list-typed
  RecordBatches → TensorAdapterConfig → AnalyzeAndTransformDataset(output_record_batches)
  → RecordBatchToExamplesEncoder → gzip WriteToTFRecord, with a 4-feature preprocessing_fn.
- `pyarrow`: a plain pyarrow read + per-row tf.Example + gzip TFRecord write.

The baselines read the events Parquet files (the bulk of the rows); mtlrec also reads the
JSON Lines side files of the same directory, as the product does. Each reports the rows it
read and the seconds of the job itself (imports excluded).
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Sequence

# The columns the baselines read and write: present in every events Parquet row.
COLUMNS = ("user_id", "item_id", "event_type", "ts")
MS_PER_HOUR = 3_600_000


def events_parquet(raw_dir: pathlib.Path) -> list[str]:
    files = sorted(str(p) for p in (raw_dir / "events").rglob("*.parquet"))
    if not files:
        raise ValueError(f"{raw_dir}/events holds no Parquet files: generate the data first")
    return files


# The measurement setting: the four-feature job the bare tf.Transform baseline runs
# (two ids, one categorical, the hour from ts), with the product's join and labels.
FOUR_FEATURES = ("user_id", "item_id", "device", "hour")


def _mtlrec(raw_dir: pathlib.Path, out_dir: pathlib.Path, beam_args, features) -> dict:
    import tensorflow_transform.beam  # noqa: F401 (imported before the clock, as for `tft`)

    from mtlrec.config import validate
    from mtlrec.pipeline.preprocess import run_validate_and_preprocess

    document = {"data": {"raw_dir": str(raw_dir)}, "runner": {"beam_args": beam_args}}
    if features is not None:
        document["features"] = {"enabled": list(features)}
    config = validate(document)
    start = time.perf_counter()
    validated, processed = run_validate_and_preprocess(
        config.job_config(), raw_dir, out_dir / "validate", out_dir / "preprocess"
    )
    return {
        "rows": validated["events_read"],
        "seconds": time.perf_counter() - start,
        "examples": processed["train_examples"] + processed["eval_examples"],
    }


def run_mtlrec(raw_dir: pathlib.Path, out_dir: pathlib.Path, beam_args: Sequence[str]) -> dict:
    return _mtlrec(raw_dir, out_dir, beam_args, None)


def run_mtlrec_4f(raw_dir: pathlib.Path, out_dir: pathlib.Path, beam_args: Sequence[str]) -> dict:
    return _mtlrec(raw_dir, out_dir, beam_args, FOUR_FEATURES)


def _preprocessing_fn(inputs: dict) -> dict:
    import tensorflow as tf
    import tensorflow_transform as tft

    return {
        "user": tft.compute_and_apply_vocabulary(inputs["user_id"], num_oov_buckets=1),
        "item": tft.compute_and_apply_vocabulary(inputs["item_id"], num_oov_buckets=1),
        "event_type": tft.compute_and_apply_vocabulary(inputs["event_type"], num_oov_buckets=1),
        "hour": tf.math.floormod(tf.math.floordiv(inputs["ts"], MS_PER_HOUR), 24),
    }


def _list_batch(table):
    """A Parquet row group as a RecordBatch of one-element list columns (what TFXIO reads)."""
    import numpy as np
    import pyarrow as pa

    offsets = pa.array(np.arange(table.num_rows + 1, dtype=np.int32))
    arrays = [pa.ListArray.from_arrays(offsets, table.column(c).combine_chunks()) for c in COLUMNS]
    return pa.RecordBatch.from_arrays(arrays, list(COLUMNS))


def _adapter_config():
    import pyarrow as pa
    import tensorflow as tf
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

    spec = {
        "user_id": tf.io.FixedLenFeature([], tf.string),
        "item_id": tf.io.FixedLenFeature([], tf.string),
        "event_type": tf.io.FixedLenFeature([], tf.string),
        "ts": tf.io.FixedLenFeature([], tf.int64),
    }
    arrow_types = {"user_id": pa.string(), "item_id": pa.string(), "event_type": pa.string()}
    arrow_schema = pa.schema([(c, pa.list_(arrow_types.get(c, pa.int64()))) for c in COLUMNS])
    schema = schema_utils.schema_from_feature_spec(spec)
    representations = tensor_representation_util.InferTensorRepresentationsFromSchema(schema)
    return tensor_adapter.TensorAdapterConfig(arrow_schema, representations)


def _encode(batch_and_passthrough) -> list[bytes]:
    from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder

    record_batch, _ = batch_and_passthrough
    return RecordBatchToExamplesEncoder().encode(record_batch)


def run_tft(raw_dir: pathlib.Path, out_dir: pathlib.Path, beam_args: Sequence[str]) -> dict:
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions

    files = events_parquet(raw_dir)
    start = time.perf_counter()
    with (
        beam.Pipeline(options=PipelineOptions(list(beam_args))) as p,
        tft_beam.Context(temp_dir=str(out_dir / "tmp")),
    ):
        batches = (
            p
            | "Files" >> beam.Create(files)
            | "Read" >> beam.io.ReadAllFromParquetBatched(columns=list(COLUMNS))
            | "ToLists" >> beam.Map(_list_batch)
        )
        (transformed, _), transform_fn = (
            batches,
            _adapter_config(),
        ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
            _preprocessing_fn, output_record_batches=True
        )
        _ = (
            transformed
            | "Encode" >> beam.FlatMap(_encode)
            | "Write"
            >> beam.io.WriteToTFRecord(
                str(out_dir / "transformed" / "part"), file_name_suffix=".tfrecord.gz"
            )
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(out_dir / "tft"))
    seconds = time.perf_counter() - start
    rows = sum(_parquet_rows(f) for f in files)
    return {"rows": rows, "seconds": seconds, "examples": rows}


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def run_pyarrow(raw_dir: pathlib.Path, out_dir: pathlib.Path, beam_args: Sequence[str]) -> dict:
    del beam_args  # one process, no engine: the floor the engines are measured against
    files = events_parquet(raw_dir)
    import pyarrow.parquet as pq
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = 0
    start = time.perf_counter()
    with tf.io.TFRecordWriter(str(out_dir / "plain.tfrecord.gz"), options="GZIP") as writer:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(columns=list(COLUMNS)):
                for row in batch.to_pylist():
                    feature = {
                        "user_id": _bytes(row["user_id"]),
                        "item_id": _bytes(row["item_id"]),
                        "event_type": _bytes(row["event_type"]),
                        "ts": tf.train.Feature(int64_list=tf.train.Int64List(value=[row["ts"]])),
                    }
                    example = tf.train.Example(features=tf.train.Features(feature=feature))
                    writer.write(example.SerializeToString())
                    rows += 1
    return {"rows": rows, "seconds": time.perf_counter() - start, "examples": rows}


def _bytes(text: str):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))


VARIANTS = {
    "mtlrec": run_mtlrec,
    "mtlrec_4f": run_mtlrec_4f,
    "tft": run_tft,
    "pyarrow": run_pyarrow,
}
