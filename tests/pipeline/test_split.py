"""The time split's boundaries on hand-written rows."""

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.pipeline.split import ValidationTs, split_ts, validation_boundary


def _batch(ts):
    n = len(ts)
    return pa.RecordBatch.from_pydict(
        {"user_id": [f"u{i}" for i in range(n)], "item_id": ["i"] * n, "ts": ts}
    )


def test_validation_is_the_latest_share_of_the_training_rows_by_count():
    # 10 rows in two batches; a clock-skewed row far in the past does not move the boundary
    batches = [_batch([1, 5, 3, 2, 4]), _batch([9, 7, 8, 6, -(10**12)])]
    with TestPipeline() as p:
        boundary = p | beam.Create(batches) | beam.CombineGlobally(ValidationTs(0.2))
        # sorted: -1e12, 1..9; floor(0.8 * 10) = row 8 -> ts 8: rows 8 and 9 are validation
        assert_that(boundary, equal_to([8]))


def test_no_training_row_leaves_validation_empty():
    assert ValidationTs(0.1).extract_output(ValidationTs(0.1).create_accumulator()) is None
    assert validation_boundary(None, 123) == 123
    assert validation_boundary(50, 123) == 50


def test_a_sample_keeps_the_boundary_close_on_many_rows():
    combine = ValidationTs(0.1, sample=2_000)
    acc = combine.add_input(combine.create_accumulator(), _batch(list(range(100_000))))
    assert combine.extract_output(acc) == pytest.approx(90_000, abs=2_000)
    assert split_ts((0, 100), None, 0.2) == 80
