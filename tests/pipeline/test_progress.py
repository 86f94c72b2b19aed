"""The console's reading progress: what the reading DoFns record, and what the driver shows."""

import logging
import os
import time

from apache_beam.testing.test_pipeline import TestPipeline

from mtlrec.features import readers, schema
from mtlrec.pipeline import progress
from mtlrec.pipeline.beam_io import ReadRawTable

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_every_file_read_and_its_rows_are_recorded_bad_files_included(tmp_path):
    events = tmp_path / "raw" / "events"
    events.mkdir(parents=True)
    (events / "a.jsonl").write_text('{"event_id": "e1"}\nnot json\n{"event_id": "e2"}\n')
    (events / "b.jsonl").write_text('{"event_id": "e3"}\n{"event_id": "e4"}\n')
    (events / "c.parquet").write_bytes(b"")
    record_dir = tmp_path / "progress"
    record_dir.mkdir()
    files = readers.discover(tmp_path / "raw", "events")
    with TestPipeline(argv=IN_PROCESS) as p:
        _ = p | ReadRawTable(files, schema.EVENTS, batch_size=2, progress_dir=str(record_dir))
    assert progress.read_progress(str(record_dir)) == progress.ReadProgress(files=3, rows=5)


def test_an_unfinished_line_is_left_for_the_next_reading(tmp_path):
    progress.record(str(tmp_path), "a.csv", 4, done=True)
    with open(tmp_path / "other-1.tsv", "w") as partial:
        partial.write("7\t1\tb.c")
    assert progress.read_progress(str(tmp_path)) == (1, 4)


def test_off_a_terminal_the_progress_is_a_log_line_and_its_directory_goes(caplog):
    with (
        caplog.at_level(logging.INFO, logger="mtlrec.pipeline.progress"),
        progress.watch("validate: reading", 2, enabled=True, interval_s=0.2) as directory,
    ):
        progress.record(directory, "a.csv", 1_234, done=True)
        time.sleep(0.9)
    assert not os.path.exists(directory)
    assert "validate: reading: 1 of 2 files, 1,234 rows, " in caplog.text
    with progress.watch("x", 2, enabled=False) as nothing:
        assert nothing is None
