"""The time split's boundaries on hand-written rows."""

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.pipeline.split import LatestShareTs, parse_split_ts, split_ts, validation_boundary


def _batch(ts):
    n = len(ts)
    return pa.RecordBatch.from_pydict(
        {"user_id": [f"u{i}" for i in range(n)], "item_id": ["i"] * n, "ts": ts}
    )


def test_validation_is_the_latest_share_of_the_training_rows_by_count():
    # 10 rows in two batches; a clock-skewed row far in the past does not move the boundary
    batches = [_batch([1, 5, 3, 2, 4]), _batch([9, 7, 8, 6, -(10**12)])]
    with TestPipeline() as p:
        boundary = p | beam.Create(batches) | beam.CombineGlobally(LatestShareTs(0.2))
        # sorted: -1e12, 1..9; floor(0.8 * 10) = row 8 -> ts 8: rows 8 and 9 are validation
        assert_that(boundary, equal_to([8]))


def test_no_training_row_leaves_validation_empty():
    assert LatestShareTs(0.1).extract_output(LatestShareTs(0.1).create_accumulator()) is None
    assert validation_boundary(None, 123) == 123
    assert validation_boundary(50, 123) == 50


def test_a_sample_keeps_the_boundary_close_on_many_rows():
    combine = LatestShareTs(0.1, sample=2_000)
    acc = combine.add_input(combine.create_accumulator(), _batch(list(range(100_000))))
    assert combine.extract_output(acc) == pytest.approx(90_000, abs=2_000)


def test_the_test_boundary_is_a_quantile_of_the_events_by_rows():
    # 9 events on days 1..9 and one clock-skewed a thousand days ahead: the time range's
    # last fifth would hold that row alone; by rows it is the latest two.
    day = 86_400_000
    batch = pa.RecordBatch.from_pydict(
        {"user_id": ["u"] * 10, "ts": [d * day for d in (*range(1, 10), 1_000)]}
    )
    with TestPipeline() as p:
        boundary = (
            p
            | beam.Create([batch])
            | beam.CombineGlobally(LatestShareTs(0.2, key_columns=("user_id", "ts")))
            | beam.Map(split_ts, None)
        )
        assert_that(boundary, equal_to([9 * day]))


def test_a_configured_split_ts_wins_and_no_event_gives_zero():
    assert split_ts(123, "2024-01-01") == parse_split_ts("2024-01-01") == 1_704_067_200_000
    assert split_ts(123, 5) == 5
    assert split_ts(None, None) == 0
    assert split_ts(77, None) == 77
