"""Validation and dedupe: every dead-letter reason, exact records and counts (SPEC §11, §13)."""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from mtlrec.config import Config
from mtlrec.features import schema
from mtlrec.pipeline.dedupe import DropDuplicates
from mtlrec.pipeline.preprocess import run_validate
from mtlrec.pipeline.step_counts import BadFilesError, BadInputError
from mtlrec.pipeline.validate import Window
from mtlrec.pipeline.validate_job import ValidateRows

IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
DAY = 86_400_000
JAN2 = 1_704_153_600_000  # 2024-01-02 00:00 UTC
COLUMNS = schema.EVENTS.column_names

# (event_id, ts, user, item, type, request, position, dwell, device, revenue), file, row
GOOD = [
    (("e1", str(JAN2), "u1", "i1", "impression", "r1", "0", None, "web", None), "a.csv", 0),
    (("e2", str(JAN2 + 5), "u1", "i1", "click", "r1", None, "4.5", None, None), "a.csv", 1),
    (
        ("e3", "2024-01-02T10:00:00Z", "u1", "i1", "purchase", None, None, None, None, "9"),
        "a.csv",
        2,
    ),
]
BAD = [
    (
        ("e4", str(JAN2), None, "i1", "impression", "r1", "0", None, None, None),
        "missing_field",
        "user_id",
    ),
    (
        ("e5", str(JAN2), "u1", "i1", "click", None, None, None, None, None),
        "missing_field",
        "request_id",
    ),
    (
        ("e6", str(JAN2), "u1", "i1", "impression", "r2", None, None, None, None),
        "missing_field",
        "position",
    ),
    (("e7", str(JAN2), "u1", "", "impression", "r2", "1", None, None, None), "empty_id", "item_id"),
    (
        ("e8", "yesterday", "u1", "i1", "purchase", None, None, None, None, None),
        "bad_timestamp",
        "ts",
    ),
    (
        ("e9", str(JAN2), "u1", "i1", "view", "r2", "1", None, None, None),
        "unknown_event_type",
        "event_type",
    ),
    (("e10", str(JAN2), "u1", "i1", "click", "r2", None, "-2", None, None), "bad_value", "dwell_s"),
    (
        ("e11", str(JAN2), "u1", "i1", "click", "r2", None, "NaN", None, None),
        "bad_value",
        "dwell_s",
    ),
    (
        ("e12", str(JAN2), "u1", "i1", "impression", "r2", "x", None, None, None),
        "bad_value",
        "position",
    ),
    (
        ("e13", str(JAN2), "u1", "i1", "purchase", None, None, None, None, "inf"),
        "bad_value",
        "revenue",
    ),
    (
        ("e14", str(JAN2 - DAY), "u1", "i1", "purchase", None, None, None, None, None),
        "out_of_range",
        "ts",
    ),
]
DETAIL = {
    "missing_field": "{} is required but missing",
    "empty_id": "{} is an empty string",
    "bad_timestamp": "{} is not int64 ms or ISO-8601",
    "unknown_event_type": "{} is not one of impression, click, purchase",
    "bad_value": "{} is not a finite number (>= 0 where required)",
    "out_of_range": "{} is outside data.start..data.end",
}
WINDOW = Window.from_dates("2024-01-02", "2024-01-03")


def _batch(rows: list[tuple[tuple, str, int]]) -> pa.RecordBatch:
    fields = [pa.field(c, pa.string()) for c in COLUMNS]
    columns = {c: [values[i] for values, _, _ in rows] for i, c in enumerate(COLUMNS)}
    columns["_file"] = [f for _, f, _ in rows]
    columns["_row"] = [r for _, _, r in rows]
    arrow_schema = pa.schema([*fields, ("_file", pa.string()), ("_row", pa.int64())])
    return pa.RecordBatch.from_pydict(columns, schema=arrow_schema)


def _dead_letter(values: tuple, reason: str, field: str, row: int) -> dict:
    record = dict(zip(COLUMNS, values, strict=True))
    detail = DETAIL[reason].format(field)
    return {**record, "_file": "b.csv", "_row": row, "reason": reason, "detail": detail}


def test_every_reject_reason_goes_to_the_dead_letter_output():
    bad_rows = [(values, "b.csv", i) for i, (values, _, _) in enumerate(BAD)]
    with TestPipeline(argv=IN_PROCESS) as p:
        checked = p | beam.Create([_batch(GOOD + bad_rows)]) | ValidateRows(schema.EVENTS, WINDOW)
        expected = [_dead_letter(v, reason, f, i) for i, (v, reason, f) in enumerate(BAD)]
        assert_that(checked.rejected, equal_to(expected), label="DeadLetter")
        assert_that(
            checked.accepted | beam.Map(lambda b: b.column("event_id").to_pylist()),
            equal_to([["e1", "e2", "e3"]]),
            label="Accepted",
        )
        counts = {
            "events": {
                "read": 14,
                "rejected": {
                    "missing_field": 3,
                    "empty_id": 1,
                    "bad_timestamp": 1,
                    "unknown_event_type": 1,
                    "bad_value": 4,
                    "out_of_range": 1,
                    "malformed_row": 0,
                },
            }
        }
        assert_that(checked.counts, equal_to([counts]), label="Counts")


def test_accepted_rows_are_typed():
    from mtlrec.pipeline.validate import validate_batch

    accepted, rejected = validate_batch(_batch(GOOD), schema.EVENTS, WINDOW)
    assert rejected.num_rows == 0
    assert accepted.column("ts").to_pylist() == [JAN2, JAN2 + 5, JAN2 + 10 * 3_600_000]
    assert accepted.column("dwell_s").to_pylist() == [None, 4.5, None]
    assert accepted.column("position").to_pylist() == [0, None, None]


def test_duplicates_keep_the_smallest_file_and_row():
    from mtlrec.pipeline.validate import validate_batch

    e1 = GOOD[0][0]
    copies = [(e1, "b.csv", 0), (e1, "a.csv", 7), GOOD[1], (e1, "a.csv", 3)]
    accepted, _ = validate_batch(_batch(copies), schema.EVENTS, WINDOW)
    with TestPipeline(argv=IN_PROCESS) as p:
        unique = p | beam.Create([accepted]) | DropDuplicates(schema.EVENTS, buckets=4)
        kept = unique.kept | beam.FlatMap(
            lambda b: zip(
                b.column("event_id").to_pylist(), b.column("_row").to_pylist(), strict=True
            )
        )
        assert_that(kept, equal_to([("e1", 3), ("e2", 1)]), label="Kept")
        dropped = [
            {"event_id": "e1", "_file": f, "_row": r, "kept_file": "a.csv", "kept_row": 3}
            for f, r in (("b.csv", 0), ("a.csv", 7))
        ]
        assert_that(unique.duplicates, equal_to(dropped), label="Dropped")


def _write_csv(path, rows: list[tuple]) -> None:
    lines = [",".join(COLUMNS)]
    lines += [",".join("" if v is None else v for v in values) for values in rows]
    path.write_text("\n".join(lines) + "\n")


def test_run_validate_writes_outputs_and_counts(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [v for v, _, _ in GOOD] + [GOOD[0][0]] + [BAD[5][0]]
    _write_csv(raw / "events.csv", rows)
    config = Config.model_validate({"data": {"max_bad_fraction": 0.5}})
    counts = run_validate(config.job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    rejected = dict.fromkeys(schema.REJECT_REASONS, 0) | {"unknown_event_type": 1}
    assert counts["events_read"] == 5
    assert counts["duplicates"] == 1
    assert counts["rejected"] == rejected
    assert counts["accepted"] == {"impression": 1, "click": 1, "purchase": 1}
    written = json.loads((tmp_path / "validate" / "counts.json").read_text())
    assert written == counts
    import pyarrow.parquet as pq

    events = pq.read_table(tmp_path / "validate" / "events")
    assert sorted(events.column("event_id").to_pylist()) == ["e1", "e2", "e3"]
    lines = [
        json.loads(line)
        for f in sorted((tmp_path / "validate" / "dead_letter").glob("events*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert [(r["event_id"], r["_row"], r["reason"]) for r in lines] == [
        ("e9", 4, "unknown_event_type")
    ]


def test_too_many_bad_rows_stop_the_job_after_writing_the_dead_letters(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_csv(raw / "events.csv", [v for v, _, _ in GOOD] + [BAD[5][0]])
    with pytest.raises(BadInputError) as error:
        run_validate(Config().job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    message = str(error.value)
    assert "1 of 4 events rejected (unknown_event_type=1)" in message
    assert "fraction 0.2500" in message and "data.max_bad_fraction=0.01" in message
    assert str(tmp_path / "validate" / "dead_letter") in message
    assert (tmp_path / "validate" / "counts.json").exists()


def test_too_many_bad_side_table_rows_stop_the_job_naming_the_table(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_csv(raw / "events.csv", [v for v, _, _ in GOOD])
    users = ["user_id,country,age_bucket,signup_ts", "u1,DE,25-34,", ",FR,18-24,", ",JP,,"]
    (raw / "users.csv").write_text("\n".join(users) + "\n")
    with pytest.raises(BadInputError) as error:
        run_validate(Config().job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    message = str(error.value)
    assert "2 of 3 users rejected (empty_id=2)" in message
    assert "fraction 0.6667" in message and "data.max_bad_fraction=0.01" in message
    counts = json.loads((tmp_path / "validate" / "counts.json").read_text())
    assert (counts["users_read"], counts["users_rejected"]) == (3, 2)


# Time sanity: the run's clock is 2024-01-10 00:00 UTC; the files are under dt=2024-01-02.
NOW = JAN2 + 8 * DAY
PARTITION = "raw/events/dt=2024-01-02/part-0.csv"
ERA = "ts is outside data.min_ts..data.max_ts"
AWAY = "ts is more than data.partition_tolerance_s from its dt= partition's day"


def _event(event_id: str, ts: int, row: int, file: str = PARTITION) -> tuple:
    return ((event_id, str(ts), "u1", "i1", "purchase", None, None, None, None, None), file, row)


def _sanity_window(**data) -> Window:
    return Window.for_run(Config(data=data).data, NOW, ["2024-01-02", "2024-01-05"])


def test_the_default_era_and_partition_rules_reject_clock_skewed_rows_with_exact_counts():
    rows = [
        _event("ok-start", JAN2, 0),
        _event("ok-late-same-day", JAN2 + DAY - 1, 1),
        _event("ok-within-tolerance", JAN2 - DAY, 2),  # 1 day before its partition: allowed
        _event("ok-next-day", JAN2 + 2 * DAY - 1, 3),
        _event("away-early", JAN2 - DAY - 1, 4),  # inside the era, too far from dt=
        _event("away-late", JAN2 + 2 * DAY, 5),
        _event("future", NOW + 400 * DAY, 6),  # hundreds of days in the future
        _event("epoch", 1, 7),  # ts=1
        _event("1913", -1_797_897_600_000, 8),
        # Outside any dt= partition only the era applies.
        _event("flat-ok", JAN2 + 5 * DAY, 9, file="raw/events.csv"),
        _event("flat-future", NOW + DAY + 1, 10, file="raw/events.csv"),
        _event("flat-edge", NOW + DAY, 11, file="raw/events.csv"),
    ]
    window = _sanity_window()
    assert window.max_ts == NOW + DAY
    assert window.min_ts == JAN2 - 365 * DAY
    with TestPipeline(argv=IN_PROCESS) as p:
        checked = p | beam.Create([_batch(rows)]) | ValidateRows(schema.EVENTS, window)
        assert_that(
            checked.rejected | beam.Map(lambda r: (r["event_id"], r["reason"], r["detail"])),
            equal_to(
                [
                    ("away-early", "out_of_range", AWAY),
                    ("away-late", "out_of_range", AWAY),
                    ("future", "out_of_range", ERA),
                    ("epoch", "out_of_range", ERA),
                    ("1913", "out_of_range", ERA),
                    ("flat-future", "out_of_range", ERA),
                ]
            ),
            label="DeadLetter",
        )
        assert_that(
            checked.accepted | beam.FlatMap(lambda b: b.column("event_id").to_pylist()),
            equal_to(
                [
                    "ok-start",
                    "ok-late-same-day",
                    "ok-within-tolerance",
                    "ok-next-day",
                    "flat-ok",
                    "flat-edge",
                ]
            ),
            label="Accepted",
        )
        rejected = dict.fromkeys(schema.REJECT_REASONS, 0) | {"out_of_range": 6}
        assert_that(
            checked.counts,
            equal_to([{"events": {"read": 12, "rejected": rejected}}]),
            label="Counts",
        )


def test_explicit_bounds_and_tolerances_replace_the_defaults():
    window = _sanity_window(
        min_ts=JAN2, max_ts=JAN2 + DAY, partition_tolerance_s=3600, future_tolerance_s=0
    )
    assert (window.min_ts, window.max_ts, window.partition_tolerance_ms) == (
        JAN2,
        JAN2 + DAY,
        3_600_000,
    )
    rows = [
        _event("first", JAN2, 0),
        _event("before-min", JAN2 - 1, 1),
        _event("last", JAN2 + DAY, 2),  # max_ts is inclusive, and within an hour of the day
        _event("after-max", JAN2 + DAY + 1, 3),
    ]
    with TestPipeline(argv=IN_PROCESS) as p:
        checked = p | beam.Create([_batch(rows)]) | ValidateRows(schema.EVENTS, window)
        assert_that(
            checked.rejected | beam.Map(lambda r: (r["event_id"], r["detail"])),
            equal_to([("before-min", ERA), ("after-max", ERA)]),
        )


def test_without_partitions_or_a_clock_there_is_no_era_bound():
    window = Window.for_run(Config().data, None, [])
    assert (window.min_ts, window.max_ts) == (None, None)
    off = Window.for_run(Config(data={"partition_tolerance_s": None}).data, NOW, [])
    assert off.partition_tolerance_ms is None and off.max_ts == NOW + DAY


def _malformed_batch(rows: list[tuple[int, str, str]]) -> pa.RecordBatch:
    """Reader output for unparseable lines of b.jsonl: (row, text, why)."""
    columns = {c: pa.nulls(len(rows), pa.string()) for c in COLUMNS}
    columns["_file"] = pa.array(["b.jsonl"] * len(rows))
    columns["_row"] = pa.array([r for r, _, _ in rows], pa.int64())
    columns["_raw"] = pa.array([t for _, t, _ in rows])
    columns["_line"] = pa.array([r + 1 for r, _, _ in rows], pa.int64())
    columns["_malformed"] = pa.array([w for _, _, w in rows])
    return pa.RecordBatch.from_pydict(columns)


def test_malformed_rows_are_dead_lettered_with_their_text_file_and_line():
    batch = _malformed_batch(
        [
            (3, "garbage {", "not valid JSON: Expecting value"),
            (7, "[1]", "a JSON list, not an object"),
        ]
    )
    with TestPipeline(argv=IN_PROCESS) as p:
        checked = p | beam.Create([batch]) | ValidateRows(schema.EVENTS, WINDOW)
        expected = [
            {
                **dict.fromkeys(COLUMNS),
                "_file": "b.jsonl",
                "_row": row,
                "_raw": text,
                "_line": row + 1,
                "reason": "malformed_row",
                "detail": why,
            }
            for row, text, why in (
                (3, "garbage {", "not valid JSON: Expecting value"),
                (7, "[1]", "a JSON list, not an object"),
            )
        ]
        assert_that(checked.rejected, equal_to(expected), label="DeadLetter")
        counts = dict.fromkeys(schema.REJECT_REASONS, 0) | {"malformed_row": 2}
        assert_that(
            checked.counts, equal_to([{"events": {"read": 2, "rejected": counts}}]), label="Counts"
        )


def test_oversize_and_object_values_are_bad_value_naming_the_field():
    long_id = "u" * 257
    rows = [
        (("e1", str(JAN2), long_id, "i1", "purchase", None, None, None, None, None), "b.csv", 0),
        (("e2", str(JAN2), "u" * 256, "i1", "purchase", None, None, None, None, None), "b.csv", 1),
        (
            ("e3", str(JAN2), "u1", "i1", "purchase", None, None, None, '{"os": "ios"}', None),
            "b.csv",
            2,
        ),
        (("e4", str(JAN2), "u1", "i1", "purchase", None, None, None, "d" * 300, None), "b.csv", 3),
    ]
    batch = _batch(rows)
    batch = batch.append_column(
        "_nested", pa.array([[], [], ["device"], []], pa.list_(pa.string()))
    )
    with TestPipeline(argv=IN_PROCESS) as p:
        checked = p | beam.Create([batch]) | ValidateRows(schema.EVENTS, WINDOW)
        assert_that(
            checked.rejected | beam.Map(lambda r: (r["event_id"], r["reason"], r["detail"])),
            equal_to(
                [
                    ("e1", "bad_value", "user_id is longer than data.max_value_chars=256"),
                    ("e3", "bad_value", "device is a JSON object or array, not a scalar"),
                    ("e4", "bad_value", "device is longer than data.max_value_chars=256"),
                ]
            ),
            label="DeadLetter",
        )
        assert_that(
            checked.rejected | beam.Map(lambda r: sorted(k for k in r if k.startswith("_"))),
            equal_to([["_file", "_row"]] * 3),
            label="NoReaderColumns",
        )
        assert_that(
            checked.accepted | beam.Map(lambda b: b.column("event_id").to_pylist()),
            equal_to([["e2"]]),
            label="Accepted",
        )


def test_max_value_chars_is_the_bound():
    from mtlrec.pipeline.validate import validate_batch

    row = (("e1", str(JAN2), "u12345", "i1", "purchase", None, None, None, None, None), "b.csv", 0)
    _, rejected = validate_batch(_batch([row]), schema.EVENTS, WINDOW, max_chars=5)
    assert rejected.column("detail").to_pylist() == [
        "user_id is longer than data.max_value_chars=5"
    ]


def test_a_bad_file_among_good_ones_is_counted_and_skipped(tmp_path, caplog):
    raw = tmp_path / "raw"
    (raw / "events").mkdir(parents=True)
    _write_csv(raw / "events" / "a.csv", [v for v, _, _ in GOOD])
    (raw / "events" / "b.parquet").write_bytes(b"")
    (raw / "events" / "c.csv").write_text(
        ",".join(COLUMNS) + "\ne9,1,u1\n"
    )  # the header and one ragged row
    config = Config.model_validate({"data": {"max_bad_fraction": 0.5}})
    with caplog.at_level("WARNING", logger="mtlrec"):
        counts = run_validate(config.job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    empty = str(raw / "events" / "b.parquet")
    assert counts["bad_files"] == 1
    assert counts["bad_file_reasons"] == {empty: "empty file (0 bytes)"}
    assert counts["events_read"] == 4
    assert counts["rejected"] == dict.fromkeys(schema.REJECT_REASONS, 0) | {"malformed_row": 1}
    assert caplog.messages == [f"skipped bad events file {empty}: empty file (0 bytes)"]
    (dead,) = [
        json.loads(line)
        for f in sorted((tmp_path / "validate" / "dead_letter").glob("events*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert dead == {
        **dict.fromkeys(COLUMNS),
        "_file": str(raw / "events" / "c.csv"),
        "_row": 0,
        "_raw": "e9,1,u1",
        "_line": 2,
        "reason": "malformed_row",
        "detail": "has 3 fields, the header has 10",
    }


def test_most_events_files_bad_stops_validate_by_default(tmp_path):
    raw = tmp_path / "raw"
    (raw / "events").mkdir(parents=True)
    _write_csv(raw / "events" / "a.csv", [v for v, _, _ in GOOD])
    (raw / "events" / "b.parquet").write_bytes(b"")
    (raw / "events" / "c.csv").write_bytes(b"")
    with pytest.raises(BadFilesError, match="^2 of 3 'events' files are bad, more than data"):
        run_validate(Config().job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)


def test_every_events_file_bad_is_one_error_naming_them(tmp_path):
    raw = tmp_path / "raw"
    (raw / "events").mkdir(parents=True)
    (raw / "events" / "a.parquet").write_bytes(b"")
    (raw / "events" / "b.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BadFilesError) as error:
        run_validate(Config().job_config(), raw, tmp_path / "validate", beam_args=IN_PROCESS)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"no readable 'events' file: {raw / 'events' / 'a.parquet'} (empty file (0 bytes)); "
        f"{raw / 'events' / 'b.parquet'} (unreadable parquet: "
    )
