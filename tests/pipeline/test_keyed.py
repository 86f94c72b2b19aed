"""Bucketing before a keyed shuffle: every row lands once, in its key's bucket, in few pieces."""

from __future__ import annotations

import collections

import pyarrow as pa
import pytest
from apache_beam.transforms.window import GlobalWindow, IntervalWindow

from mtlrec.pipeline import keyed

GLOBAL = GlobalWindow()


def _batch(start: int, rows: int) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "user_id": [f"u{i % 7}" for i in range(start, start + rows)],
            "n": pa.array(range(start, start + rows), pa.int64()),
        }
    )


def _bundle(fn: keyed.GatherBucketPieces, batches: list[pa.RecordBatch]) -> list:
    fn.start_bundle()
    out = [element for batch in batches for element in fn.process(batch, GLOBAL)]
    return out + [windowed.value for windowed in fn.finish_bundle()]


def test_pieces_of_a_bucket_are_joined_over_the_bundle():
    fn = keyed.GatherBucketPieces(["user_id"], 3)
    out = _bundle(fn, [_batch(0, 20), _batch(20, 20), _batch(40, 20)])
    assert sorted(bucket for bucket, _ in out) == sorted({b for b, _ in out})
    rows = sorted(n for _, piece in out for n in piece.column("n").to_pylist())
    assert rows == list(range(60))
    expected = keyed.bucket_ids(pa.Table.from_batches([_batch(0, 60)]), ["user_id"], 3)
    for bucket, piece in out:
        assert set(keyed.bucket_ids(piece, ["user_id"], 3)) == {bucket}
        assert piece.num_rows == int((expected == bucket).sum())


def test_a_full_bucket_or_a_full_buffer_is_sent_before_the_bundle_ends():
    fn = keyed.GatherBucketPieces(["user_id"], 2, piece_rows=15, buffered_rows=1_000)
    fn.start_bundle()
    early = list(fn.process(_batch(0, 20), GLOBAL)) + list(fn.process(_batch(20, 20), GLOBAL))
    assert early and all(piece.num_rows >= 15 for _, piece in early)
    late = [w.value for w in fn.finish_bundle()]
    assert sum(p.num_rows for _, p in early + late) == 40

    fn = keyed.GatherBucketPieces(["user_id"], 4, piece_rows=1_000, buffered_rows=30)
    fn.start_bundle()
    assert list(fn.process(_batch(0, 20), GLOBAL)) == []
    flushed = list(fn.process(_batch(20, 20), GLOBAL))
    assert sum(p.num_rows for _, p in flushed) == 40
    assert [w.value for w in fn.finish_bundle()] == []
    counts = collections.Counter(b for b, _ in flushed)
    assert max(counts.values()) == 1


def test_a_windowed_input_is_refused_with_the_fix():
    fn = keyed.GatherBucketPieces(["user_id"], 2)
    fn.start_bundle()
    with pytest.raises(ValueError, match=r"global window only.*WindowInto\(GlobalWindows\(\)\)"):
        list(fn.process(_batch(0, 4), IntervalWindow(0, 60)))


def test_key_starts_mark_each_new_key_and_nulls_equal_each_other():
    keys = pa.table({"user": ["a", "a", "a", "b", None, None], "item": [1, 1, 2, 2, 2, 2]})
    assert keyed.key_starts(keys).tolist() == [True, False, True, True, True, False]
    assert keyed.key_starts(keys.slice(0, 0)).tolist() == []


def test_first_per_key_keeps_the_first_row_in_order_of_the_order_columns():
    rows = pa.table({"k": ["x", "y", "x", "x"], "ts": [3, 1, 1, 2], "n": [0, 1, 2, 3]})
    assert keyed.first_per_key(rows, ["k"], ["ts", "n"]).tolist() == [False, True, True, False]
