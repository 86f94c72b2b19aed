"""tf.Transform on Arrow batches: analyse the train split, transform both to tf.Examples.

The Arrow path (RecordBatches + `TensorAdapterConfig`, `output_record_batches=True`, the
tfx_bsl example encoder) avoids per-row Python dicts, the slow part of a TFT job.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
from tfx_bsl.public import tfxio

from mtlrec.features.declarations import EVENT_TS, JOINED_COLUMNS, LABELS, Dtype, FeatureSet
from mtlrec.features.preprocessing import neutral_default, preprocessing_fn
from mtlrec.pipeline.arrow_coder import RecordBatch
from mtlrec.pipeline.split import SplitByTime

SPLITS = ("train", "validation", "eval")
"""The splits in time order; "eval" is the test split."""
_ARROW_TYPES = {Dtype.STRING: pa.large_binary(), Dtype.INT: pa.int64(), Dtype.FLOAT: pa.float32()}


def _dense(values: pa.Array, column: str) -> pa.Array:
    dtype = _ARROW_TYPES[JOINED_COLUMNS[column]]
    if JOINED_COLUMNS[column] is Dtype.FLOAT:
        values = pc.cast(values, pa.float64())
        values = pc.fill_null(values, math.nan)
    else:
        values = pc.fill_null(values, pa.scalar(neutral_default(column), values.type))
    values = pc.cast(values, dtype)
    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int64))
    return pa.LargeListArray.from_arrays(offsets, values)


def to_tft_batch(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.RecordBatch:
    """The transform's input: one length-1 list per value, missing values made neutral."""
    return pa.RecordBatch.from_arrays(
        [_dense(batch.column(c), c) for c in columns], names=list(columns)
    )


def tensor_adapter_config(columns: Sequence[str]):
    """Dense scalar tensors (the `raw_feature_spec`) over the `to_tft_batch` columns."""
    arrow_schema = pa.schema([(c, pa.large_list(_ARROW_TYPES[JOINED_COLUMNS[c]])) for c in columns])
    representations = {
        c: schema_pb2.TensorRepresentation(
            dense_tensor=schema_pb2.TensorRepresentation.DenseTensor(
                column_name=c, shape=schema_pb2.FixedShape()
            )
        )
        for c in columns
    }
    return tfxio.TensorAdapterConfig(arrow_schema, representations)


# tf.Transform's output schema reads a ragged feature's values from the key
# `<name>$ragged_values` (its `transformed_feature_spec`); the encoder names the key after
# the column, so without this rename every reader parsed empty lists.
RAGGED_VALUES = "{}$ragged_values"


def _encode(record_batch: pa.RecordBatch, ragged: frozenset[str]) -> list[bytes]:
    names = [RAGGED_VALUES.format(n) if n in ragged else n for n in record_batch.schema.names]
    return RecordBatchToExamplesEncoder().encode(record_batch.rename_columns(names))


def _record_batch(transformed) -> pa.RecordBatch:
    record_batch, _ = transformed
    return record_batch


def _count_rows(batch: pa.RecordBatch, split: str) -> dict:
    """`<split>_examples`, and `positives.<split>.<label>`: rows whose label is above 0 (the
    split check before training needs one of each label in every split)."""
    positives = {}
    for label in LABELS:
        if label not in batch.schema.names:
            continue
        values = batch.column(label)
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        positive = pc.cast(pc.fill_null(pc.greater(values, 0), False), pa.int64())
        positives[label] = pc.sum(positive).as_py() or 0
    return {f"{split}_examples": batch.num_rows, "positives": {split: positives}}


@beam.ptransform_fn
def TransformSplits(  # noqa: N802
    splits: dict[str, beam.PCollection],
    boundaries: tuple[beam.pvalue.AsSingleton, beam.pvalue.AsSingleton],
    feature_set: FeatureSet,
    columns: Sequence[str],
    output_dir: str,
) -> dict[str, beam.PCollection]:
    """Analyses `splits['train']` only, transforms every split, writes `transform_fn`.

    The splits go through one TransformDataset and are split again after it, by
    `SplitByTime` on the `event_ts` the transform passes through (`boundaries`: validation's,
    then eval's): the transform graph is loaded once per worker, not once per split. Must be
    applied inside a `tft_beam.Context`. Returns the serialized tf.Examples of each split
    (lists of records a batch, `TFRecordShards` elements) under "train", "validation" and
    "eval", and their count dicts under "<split>_examples".
    """
    config = tensor_adapter_config(columns)
    inputs = {
        name: batches
        | f"ToTft[{name}]" >> beam.Map(to_tft_batch, columns).with_output_types(RecordBatch)
        for name, batches in splits.items()
    }
    fn = functools.partial(preprocessing_fn, feature_set=feature_set)
    transform_fn = (inputs["train"], config) | "Analyze" >> tft_beam.AnalyzeDataset(fn)
    every = tuple(inputs.values()) | "Examples" >> beam.Flatten()
    transformed, _ = ((every, config), transform_fn) | "Transform" >> (
        tft_beam.TransformDataset(output_record_batches=True)
    )
    validation_ts, test_ts = boundaries
    by_test = (
        transformed
        | "Batches" >> beam.Map(_record_batch).with_output_types(RecordBatch)
        | "Resplit" >> SplitByTime(test_ts, ts_column=EVENT_TS)
    )
    by_validation = by_test.train | "ResplitValidation" >> SplitByTime(
        validation_ts, ts_column=EVENT_TS
    )
    resplit = {
        "train": by_validation.train,
        "validation": by_validation.eval,
        "eval": by_test.eval,
    }
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(f"{output_dir}/transform_fn")
    ragged = frozenset(f.name for f in feature_set.features if f.multivalent)
    outputs = {}
    for name in SPLITS:
        data = resplit[name]
        outputs[name] = data | f"Encode[{name}]" >> beam.Map(_encode, ragged)
        outputs[f"{name}_examples"] = data | f"Count[{name}]" >> beam.Map(_count_rows, name)
    return outputs
