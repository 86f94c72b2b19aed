"""The train / validation / eval (test) split by time (SPEC §5) and the raw eval sample.

Both boundaries are quantiles of event time by rows, so a few clock-skewed rows cannot move
them (a boundary from the time range would put nearly every row on one side):
split_ts = `data.split_ts` when set, else the event time from which the latest
`eval_fraction` of the accepted events lie; eval (the test split) = examples with ts >=
split_ts. validation_ts = the event time from which the latest `validation_fraction` of
the examples before split_ts lie; validation = those examples, train = the ones before it.
Training selects on validation only; only evaluation and blessing read the eval split.
"""

from __future__ import annotations

import datetime
import fractions
import math

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtlrec.pipeline import keyed
from mtlrec.pipeline.arrow_coder import RecordBatch

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def parse_split_ts(value: str | int) -> int:
    """`data.split_ts` as ms since epoch: an integer (ms) or ISO-8601 (naive = UTC).

    Raises:
      ValueError: neither form; the message shows both.
    """
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return int(value)
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"data.split_ts: {value!r} is neither ms since epoch (e.g. 1704067200000) nor "
            f"ISO-8601 (e.g. 2024-01-01T00:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return (parsed - EPOCH) // datetime.timedelta(milliseconds=1)


def split_ts(latest_share_ts: int | None, configured: str | int | None) -> int:
    """The train/eval boundary in ms: `configured` when set, else `latest_share_ts` (see the
    module docstring); 0 when there is no event (a job whose every row was rejected still
    ends, so the rejection counts can stop it)."""
    if configured is not None:
        return parse_split_ts(configured)
    return 0 if latest_share_ts is None else latest_share_ts


class LatestShareTs(beam.CombineFn):
    """The event time from which the latest `fraction` of the rows lie: over RecordBatches
    with user_id, item_id and ts, the ts at row floor((1 - fraction) * n) of their sorted
    `ts`, computed on at most `sample` rows chosen by hash (deterministic; exact below that
    many rows, within a fraction of a percent of the rows above). None when there is no row.
    The hash reads `key_columns`; the events' key batches carry user_id and ts only."""

    def __init__(
        self,
        fraction: float,
        sample: int = 1_000_000,
        key_columns: tuple[str, ...] = ("user_id", "item_id", "ts"),
    ):
        self._fraction = fraction
        self._key_columns = key_columns
        self._sample = sample

    def create_accumulator(self) -> tuple[np.ndarray, np.ndarray]:
        return np.empty(0, np.uint64), np.empty(0, np.int64)

    def _keep(self, keys: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if keys.size <= self._sample:
            return keys, ts
        order = np.argsort(keys, kind="stable")[: self._sample]
        return keys[order], ts[order]

    def add_input(self, acc, batch: pa.RecordBatch):
        if batch.num_rows == 0:
            return acc
        keys = keyed.bucket_ids(batch, self._key_columns, 2**62).astype(np.uint64)
        ts = batch.column("ts").to_numpy(zero_copy_only=False).astype(np.int64)
        return self._keep(np.concatenate([acc[0], keys]), np.concatenate([acc[1], ts]))

    def merge_accumulators(self, accs):
        accs = list(accs)
        return self._keep(
            np.concatenate([a[0] for a in accs]), np.concatenate([a[1] for a in accs])
        )

    def extract_output(self, acc) -> int | None:
        ts = np.sort(acc[1])
        if ts.size == 0:
            return None
        share = 1 - fractions.Fraction(repr(self._fraction))
        return int(ts[min(math.floor(share * ts.size), ts.size - 1)])


def validation_boundary(validation_ts: int | None, test_ts: int) -> int:
    """No training-span row: the validation split is empty (its boundary is the test's)."""
    return test_ts if validation_ts is None else validation_ts


def _is_train(ts: pa.Array, boundary: int) -> pa.Array:
    if pa.types.is_list(ts.type) or pa.types.is_large_list(ts.type):
        ts = pc.list_flatten(ts)  # one value per row
    return pc.less(ts, boundary)


class _SplitFn(beam.DoFn):
    """Main output: the training rows of each batch; tagged `eval`: the rest."""

    def __init__(self, ts_column: str):
        self._ts_column = ts_column

    def process(self, batch: pa.RecordBatch, boundary: int):
        is_train = _is_train(batch.column(self._ts_column), boundary)
        train = batch.filter(is_train)
        evaluation = batch.filter(pc.invert(is_train))
        if train.num_rows:
            yield train
        if evaluation.num_rows:
            yield beam.pvalue.TaggedOutput("eval", evaluation)


@beam.ptransform_fn
def SplitByTime(  # noqa: N802
    examples: beam.PCollection, boundary: beam.pvalue.AsSingleton, ts_column: str = "ts"
) -> beam.pvalue.DoOutputsTuple:
    """`train` (ts < boundary) and `eval` RecordBatches; `ts_column` may hold one-value lists
    (tf.Transform's record batches)."""
    # Typed main output: batches that cross a stage boundary travel with the Arrow coder.
    split = beam.ParDo(_SplitFn(ts_column), boundary).with_output_types(RecordBatch)
    return examples | "Split" >> split.with_outputs("eval", main="train")


def _sample_keys(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    return keyed.bucket_ids(table, ("user_id", "item_id", "ts"), 2**62)


class SampleRows(beam.CombineFn):
    """Up to `size` rows chosen by the smallest hash of (user, item, ts) (deterministic)."""

    def __init__(self, size: int, arrow_schema: pa.Schema):
        self._size = size
        self._schema = arrow_schema

    def create_accumulator(self) -> pa.Table:
        return self._schema.empty_table()

    def _keep(self, table: pa.Table) -> pa.Table:
        if table.num_rows <= self._size:
            return table
        order = np.argsort(_sample_keys(table), kind="stable")[: self._size]
        return table.take(pa.array(np.sort(order)))

    def add_input(self, acc: pa.Table, batch: pa.RecordBatch) -> pa.Table:
        return self._keep(pa.concat_tables([acc, pa.Table.from_batches([batch], self._schema)]))

    def merge_accumulators(self, accs) -> pa.Table:
        return self._keep(pa.concat_tables(list(accs)))

    def extract_output(self, acc: pa.Table) -> pa.Table:
        order = np.argsort(_sample_keys(acc), kind="stable")
        return acc.take(pa.array(order))
