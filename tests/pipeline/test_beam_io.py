"""Beam sources: every raw file read, bad files reported instead of failing (SPEC §11)."""

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.features import readers, schema
from mtlrec.pipeline.beam_io import ReadRawTable, add_counts

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_read_raw_table_reports_bad_files_and_reads_the_rest(tmp_path):
    good = tmp_path / "events" / "a.jsonl"
    good.parent.mkdir()
    good.write_text('{"event_id": "e1"}\nnot json\n{"event_id": "e2"}\n')
    (tmp_path / "events" / "b.parquet").write_bytes(b"")
    (tmp_path / "events" / "c.csv").write_bytes(b"")
    truncated = tmp_path / "events" / "d.parquet"
    pq.write_table(pa.table({"event_id": ["e3"]}), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    files = readers.discover(tmp_path, "events")
    with TestPipeline(argv=IN_PROCESS) as p:
        read = p | ReadRawTable(files, schema.EVENTS)
        rows = read.batches | beam.FlatMap(
            lambda b: [(r["event_id"], r["_row"], r.get("_raw")) for r in b.to_pylist()]
        )
        assert_that(
            rows, equal_to([("e1", 0, None), ("e2", 2, None), (None, 1, "not json")]), label="Rows"
        )
        reasons = read.bad_files | beam.Map(lambda bad: (bad[0], bad[1].split(":")[0]))
        assert_that(
            reasons,
            equal_to(
                [
                    (str(tmp_path / "events" / "b.parquet"), "empty file (0 bytes)"),
                    (str(tmp_path / "events" / "c.csv"), "empty file (0 bytes)"),
                    (str(truncated), "unreadable parquet"),
                ]
            ),
            label="BadFiles",
        )


def test_add_counts_sums_numbers_and_keeps_text_entries():
    a = {"events": {"read": 2, "bad_files": {"x.csv": "empty file (0 bytes)"}}}
    b = {"events": {"read": 3, "bad_files": {"y.parquet": "unreadable parquet: footer"}}}
    assert add_counts(a, b) == {
        "events": {
            "read": 5,
            "bad_files": {
                "x.csv": "empty file (0 bytes)",
                "y.parquet": "unreadable parquet: footer",
            },
        }
    }
