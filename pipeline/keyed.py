"""Keyed shuffles of Arrow batches: the scalable form of a per-key CoGroupByKey.

Each batch is cut into hash buckets of its key columns; a CoGroupByKey on the bucket brings
every row of a key (from every input) into one worker, where the per-key logic runs
vectorised over the whole bucket. Rows of one key never span two buckets, so the result is
the same as a per-row CoGroupByKey, at Arrow speed. More buckets = smaller groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from mtlrec.pipeline.arrow_coder import RecordBatch, RecordBatchCoder

DEFAULT_BUCKETS = 64
ROWS_PER_BUCKET = 100_000
MIN_BUCKETS, MAX_BUCKETS = 8, 4096
# A batch cut into hundreds of buckets makes hundreds of small pieces; each shuffled element
# pays the coder's fixed cost (schema, IPC framing) and a runner state entry, so pieces of
# one bucket are gathered over the bundle first, within a bound on the rows held.
PIECE_ROWS = 8_192
BUFFERED_ROWS = 262_144
_SHUFFLE_CODER = RecordBatchCoder()


def buckets_for(rows: int) -> int:
    """Bucket count that keeps a group near ROWS_PER_BUCKET rows (one worker's easy bite)."""
    return max(MIN_BUCKETS, min(MAX_BUCKETS, -(-rows // ROWS_PER_BUCKET)))


def bucket_ids(batch: pa.RecordBatch | pa.Table, keys: Sequence[str], buckets: int) -> np.ndarray:
    """Stable (process- and run-independent) bucket of every row's key."""
    frame = pd.DataFrame({k: batch.column(k).to_numpy(zero_copy_only=False) for k in keys})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return (hashed % np.uint64(buckets)).astype(np.int64)


def split_by_bucket(
    batch: pa.RecordBatch, keys: Sequence[str], buckets: int
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(bucket, rows of that bucket) for every non-empty bucket of `batch`."""
    if batch.num_rows == 0:
        return
    ids = bucket_ids(batch, keys, buckets)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
    for chunk in np.split(order, bounds):
        yield int(ids[chunk[0]]), batch.take(pa.array(chunk))


def concat(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """One table of all `batches` (an empty table of `schema` when there are none)."""
    return pa.Table.from_batches(list(batches), schema=schema)


def first_per_key(table: pa.Table, keys: Sequence[str], order_by: Sequence[str]) -> np.ndarray:
    """Mask of the first row of every key when rows are ordered by `order_by` (ascending)."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=bool)
    sort_keys = [(k, "ascending") for k in (*keys, *order_by)]
    order = pc.sort_indices(table, sort_keys=sort_keys)
    starts = key_starts(table.select(list(keys)).take(order))
    mask = np.zeros(len(order), dtype=bool)
    mask[order.to_numpy()] = starts
    return mask


def key_starts(keys: pa.Table) -> np.ndarray:
    """Mask of the rows of key-sorted `keys` whose key differs from the previous row's.

    Compared in Arrow: converting string columns to numpy would make a Python object per
    value. Null keys equal each other, as in a group-by.
    """
    starts = np.zeros(keys.num_rows, dtype=bool)
    if keys.num_rows == 0:
        return starts
    starts[0] = True
    for column in keys.columns:
        previous, current = column.slice(0, len(column) - 1), column.slice(1)
        differs = pc.coalesce(
            pc.not_equal(current, previous), pc.xor(current.is_null(), previous.is_null())
        )
        starts[1:] |= differs.to_numpy(zero_copy_only=False)
    return starts


def to_batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """The non-empty record batches of `table` (one contiguous batch per chunk)."""
    for batch in table.combine_chunks().to_batches():
        if batch.num_rows:
            yield batch


def group_tables(
    grouped: Mapping[str, Iterable[pa.RecordBatch]], schemas: Mapping[str, pa.Schema]
) -> dict[str, pa.Table]:
    """The CoGroupByKey value of one bucket as one table per input."""
    return {name: concat(grouped.get(name, ()), schemas[name]) for name in schemas}


def _pack(element: tuple[int, pa.RecordBatch]) -> tuple[int, bytes]:
    return element[0], _SHUFFLE_CODER.encode(element[1])


def _unpack(element: tuple[int, Iterable[bytes]]) -> tuple[int, list[pa.RecordBatch]]:
    bucket, packed = element
    return bucket, [_SHUFFLE_CODER.decode(p) for p in packed]


def _tag(element: tuple[int, bytes], name: str) -> tuple[int, tuple[str, bytes]]:
    return element[0], (name, element[1])


def unpack_tagged(
    tagged: Iterable[tuple[str, bytes]], names: Sequence[str]
) -> dict[str, list[pa.RecordBatch]]:
    """The batches of `TagBuckets` pieces (of one bucket) by input name."""
    grouped: dict[str, list[pa.RecordBatch]] = {name: [] for name in names}
    for name, packed in tagged:
        grouped[name].append(_SHUFFLE_CODER.decode(packed))
    return grouped


def _collect(element, names: Sequence[str]) -> tuple[int, dict[str, list[pa.RecordBatch]]]:
    bucket, tagged = element
    return bucket, unpack_tagged(tagged, names)


class GatherBucketPieces(beam.DoFn):
    """(bucket, rows) of the bundle's batches, a bucket's pieces joined up to `piece_rows`;
    everything held is sent once `buffered_rows` are held, and at the bundle's end.

    Works in the global window (batch jobs), where rows flushed at the bundle's end belong;
    a windowed input is refused rather than mixed across windows.
    """

    def __init__(
        self,
        keys: Sequence[str],
        buckets: int,
        *,
        piece_rows: int = PIECE_ROWS,
        buffered_rows: int = BUFFERED_ROWS,
    ) -> None:
        self._keys, self._buckets = tuple(keys), buckets
        self._piece_rows, self._buffered_rows = piece_rows, buffered_rows

    def start_bundle(self) -> None:
        self._pieces: dict[int, list[pa.RecordBatch]] = {}
        self._rows: dict[int, int] = {}

    def _take(self, bucket: int) -> tuple[int, pa.RecordBatch]:
        del self._rows[bucket]
        return bucket, pa.concat_batches(self._pieces.pop(bucket))

    def _take_all(self) -> Iterator[tuple[int, pa.RecordBatch]]:
        for bucket in list(self._pieces):
            yield self._take(bucket)

    def process(
        self, batch: pa.RecordBatch, window=beam.DoFn.WindowParam
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        if not isinstance(window, GlobalWindow):
            raise ValueError(
                f"keyed shuffles gather rows over a bundle and work in the global window only, "
                f"got {window}: apply beam.WindowInto(GlobalWindows()) before them"
            )
        for bucket, piece in split_by_bucket(batch, self._keys, self._buckets):
            self._pieces.setdefault(bucket, []).append(piece)
            self._rows[bucket] = self._rows.get(bucket, 0) + piece.num_rows
            if self._rows[bucket] >= self._piece_rows:
                yield self._take(bucket)
        if sum(self._rows.values()) >= self._buffered_rows:
            yield from self._take_all()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for element in self._take_all():
            yield GlobalWindows.windowed_value(element)


@beam.ptransform_fn
def BucketBatches(  # noqa: N802 (Beam transform names are CamelCase)
    batches: beam.PCollection, keys: Sequence[str], buckets: int
) -> beam.PCollection:
    """(bucket, packed rows of that bucket) pieces of the batches, ready for a GroupByKey.

    The rows travel as Arrow IPC bytes (`RecordBatchCoder`) that only the grouped side
    unpacks: a runner's grouping table decodes and re-encodes every value with its coder
    (the FnApiRunner does, in its one process), and bytes it only copies.
    """
    return (
        batches
        | "Split"
        >> beam.ParDo(GatherBucketPieces(keys, buckets)).with_output_types(tuple[int, RecordBatch])
        | "Pack" >> beam.Map(_pack).with_output_types(tuple[int, bytes])
    )


@beam.ptransform_fn
def GroupBuckets(  # noqa: N802
    batches: beam.PCollection, keys: Sequence[str], buckets: int
) -> beam.PCollection:
    """GroupByKey of a RecordBatch PCollection on the hash bucket of `keys`.

    Returns (bucket, [batches]) per non-empty bucket.
    """
    return (
        batches
        | "Bucket" >> BucketBatches(keys, buckets)
        | "Group" >> beam.GroupByKey()
        | "Unpack" >> beam.Map(_unpack).with_output_types(tuple[int, list[RecordBatch]])
    )


@beam.ptransform_fn
def TagBuckets(  # noqa: N802
    inputs: Mapping[str, beam.PCollection], keys: Sequence[str], buckets: int
) -> beam.PCollection:
    """(bucket, (input name, packed rows)) pieces of every input, flattened into one
    PCollection: what `CoGroupBatches` groups, or a multimap side input that a runner serves
    one bucket at a time (`unpack_tagged` reads a bucket's pieces)."""
    tagged = [
        batches
        | f"Bucket[{name}]" >> BucketBatches(keys, buckets)
        | f"Tag[{name}]" >> beam.Map(_tag, name).with_output_types(tuple[int, tuple[str, bytes]])
        for name, batches in inputs.items()
    ]
    return tagged | "Flatten" >> beam.Flatten()


@beam.ptransform_fn
def CoGroupBatches(  # noqa: N802
    inputs: Mapping[str, beam.PCollection], keys: Sequence[str], buckets: int
) -> beam.PCollection:
    """CoGroupByKey of RecordBatch PCollections on the hash bucket of `keys`.

    Returns (bucket, {input name: [batches]}) per non-empty bucket. Built from Flatten and
    GroupByKey rather than `beam.CoGroupByKey` so that the shuffled values stay packed bytes.
    """
    return (
        inputs
        | "Tag" >> TagBuckets(keys, buckets)
        | "Group" >> beam.GroupByKey()
        | "Collect"
        >> beam.Map(_collect, list(inputs)).with_output_types(
            tuple[int, dict[str, list[RecordBatch]]]
        )
    )
