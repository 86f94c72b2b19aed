"""Raw-log readers: every format on hand-written rows, raw strings and typed values."""

import datetime
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtlrec.features import readers, schema

EVENTS = schema.EVENTS


def raw_rows(raw_dir, table=EVENTS, name="events"):
    files = readers.discover(raw_dir, name)
    return [
        r
        for f in files
        for b in readers.read_batches(f.path, f.format, table)
        for r in b.to_pylist()
    ]


def typed_rows(raw_dir, table=EVENTS, name="events"):
    files = readers.discover(raw_dir, name)
    return [
        r
        for f in files
        for b in readers.read_batches(f.path, f.format, table)
        for r in readers.to_contract_types(b, table).to_pylist()
    ]


def test_parquet_raw_strings_and_types(tmp_path):
    pq.write_table(
        pa.table(
            {
                "event_id": ["e1", "e2", "e3"],
                "ts": pa.array([1700000000000, 1700000001000, 1700000002500], pa.int64()),
                "user_id": ["u1", "u1", "u2"],
                "item_id": ["i1", "i1", "i9"],
                "event_type": ["impression", "click", "purchase"],
                "request_id": ["r1", "r1", None],
                "position": pa.array([3, None, None], pa.int64()),
                "dwell_s": pa.array([None, 12.5, None], pa.float64()),
                "revenue": pa.array([None, None, 20.0], pa.float64()),
                "extra": [1, 2, 3],  # not in the contract: dropped
            }
        ),
        tmp_path / "events.parquet",
    )
    path = str(tmp_path / "events.parquet")
    assert readers.discover(tmp_path, "events") == [readers.RawFile(path, "parquet", None)]
    raw = raw_rows(tmp_path)
    assert raw[1] == {
        "event_id": "e2",
        "ts": "1700000001000",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "click",
        "request_id": "r1",
        "position": None,
        "dwell_s": "12.5",
        "device": None,  # column missing in the file
        "revenue": None,
        "_file": path,
        "_row": 1,
    }
    assert [r["revenue"] for r in raw] == [None, None, "20"]
    typed = typed_rows(tmp_path)
    assert [(r["ts"], r["position"], r["dwell_s"], r["revenue"]) for r in typed] == [
        (1700000000000, 3, None, None),
        (1700000001000, None, 12.5, None),
        (1700000002500, None, None, 20.0),
    ]
    assert [r["_row"] for r in typed] == [0, 1, 2]


def test_csv_both_ts_forms_and_empty_fields(tmp_path):
    (tmp_path / "events.csv").write_text(
        "event_id,ts,user_id,item_id,event_type,request_id,position,dwell_s,device\n"
        "e1,1700000000000,u1,i1,impression,r1,0,,mobile\n"
        "e2,2023-11-14T22:13:21Z,u1,i1,click,r1,,7,mobile\n"
        ",2023-11-14T23:13:22+01:00,u2,i2,click,r2,,-1.5,\n"
        "e4,2023-11-14 22:13:23.250,u2,i2,purchase,,,nan,desktop\n"
    )
    raw = raw_rows(tmp_path)
    assert [r["event_id"] for r in raw] == ["e1", "e2", "", "e4"]  # required: "" kept
    assert [r["dwell_s"] for r in raw] == [None, "7", "-1.5", "nan"]  # optional: "" is null
    assert [r["request_id"] for r in raw] == ["r1", "r1", "r2", None]
    assert [r["device"] for r in raw] == ["mobile", "mobile", None, "desktop"]
    assert [r["revenue"] for r in raw] == [None] * 4  # column absent
    typed = typed_rows(tmp_path)
    assert [r["ts"] for r in typed] == [
        1700000000000,
        1700000001000,
        1700000002000,
        1700000003250,  # naive ISO is UTC
    ]
    assert [r["position"] for r in typed] == [0, None, None, None]
    dwell = [r["dwell_s"] for r in typed]
    assert dwell[:3] == [None, 7.0, -1.5] and dwell[3] != dwell[3]  # NaN kept for the validator
    assert [r["_row"] for r in typed] == [0, 1, 2, 3]


def test_jsonl_mixed_types_and_unreadable_line(tmp_path):
    (tmp_path / "events.jsonl").write_text(
        '{"event_id": "e1", "ts": 1700000000000, "user_id": "u1", "item_id": "i1",'
        ' "event_type": "impression", "request_id": "r1", "position": 2, "dwell_s": null}\n'
        "\n"
        '{"event_id": "e2", "ts": "2023-11-14T22:13:20.5Z", "user_id": 7, "item_id": "i1",'
        ' "event_type": "click", "request_id": "r1", "dwell_s": 3.25, "device": "tablet"}\n'
        "{not json\n"
        '{"event_id": "e3", "ts": "not-a-time", "user_id": "u1", "item_id": "i2",'
        ' "event_type": "view", "position": 1.0, "revenue": 1e20}\n'
    )
    raw = raw_rows(tmp_path)
    path = str(tmp_path / "events.jsonl")
    # line numbers; the blank line is no row; the unreadable line comes in its own batch, last
    assert [r["_row"] for r in raw] == [0, 2, 4, 3]
    assert raw[0] == {
        "event_id": "e1",
        "ts": "1700000000000",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "impression",
        "request_id": "r1",
        "position": "2",
        **dict.fromkeys(("dwell_s", "device", "revenue")),
        "_file": path,
        "_row": 0,
    }
    assert raw[1]["user_id"] == "7" and raw[1]["dwell_s"] == "3.25"
    assert raw[2]["position"] == "1.0" and raw[2]["revenue"] == "1e+20"
    assert raw[3] == {
        **dict.fromkeys(EVENTS.column_names),
        "_file": path,
        "_row": 3,
        "_raw": "{not json",
        "_line": 4,
        "_malformed": "not valid JSON: Expecting property name enclosed in double quotes",
    }
    typed = typed_rows(tmp_path)
    assert [r["ts"] for r in typed] == [1700000000000, 1700000000500, None, None]
    assert [r["position"] for r in typed] == [2, None, 1, None]
    assert [r["event_type"] for r in typed] == ["impression", "click", "view", None]


def test_ragged_csv_rows_come_apart_with_their_text_and_line(tmp_path):
    (tmp_path / "events.csv").write_text(
        "event_id,ts,user_id,item_id,event_type\n"
        "e1,1,u1,i1,click\n"
        "e2,2,u1\n"
        "e3,3,u1,i1,click\n"
        "e4,4,u1,i1,click,extra,more\n"
        "e5,5,u1,i1,click\n"
    )
    raw = raw_rows(tmp_path)
    path = str(tmp_path / "events.csv")
    assert [(r["event_id"], r["_row"]) for r in raw[:3]] == [("e1", 0), ("e3", 2), ("e5", 4)]
    assert raw[3:] == [
        {
            **dict.fromkeys(EVENTS.column_names),
            "_file": path,
            "_row": row,
            "_raw": text,
            "_line": row + 2,
            "_malformed": why,
        }
        for row, text, why in (
            (1, "e2,2,u1", "has 3 fields, the header has 5"),
            (3, "e4,4,u1,i1,click,extra,more", "has 7 fields, the header has 5"),
        )
    ]


def test_garbage_lines_keep_at_most_max_raw_chars_and_nested_values_are_marked(tmp_path):
    (tmp_path / "events.jsonl").write_text(
        "x" * (readers.MAX_RAW_CHARS + 50) + "\n"
        "42\n"
        '{"event_id": "e1", "device": {"os": "ios"}, "user_id": ["u1"]}\n'
    )
    raw = raw_rows(tmp_path)
    assert raw[0]["device"] == '{"os": "ios"}' and raw[0]["user_id"] == '["u1"]'
    assert raw[0]["_nested"] == ["user_id", "device"]
    assert [(r["_raw"], r["_line"], r["_malformed"]) for r in raw[1:]] == [
        ("x" * readers.MAX_RAW_CHARS, 1, "not valid JSON: Expecting value"),
        ("42", 2, "a JSON int, not an object"),
    ]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_an_empty_file_is_a_bad_file(tmp_path, fmt):
    path = tmp_path / f"events.{fmt}"
    path.write_bytes(b"")
    with pytest.raises(readers.BadFileError, match=r"events\.\w+: empty file \(0 bytes\)$"):
        list(readers.read_batches(str(path), fmt, EVENTS))


def test_a_truncated_parquet_file_is_a_bad_file(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event_id": ["e1", "e2"]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(readers.BadFileError) as caught:
        list(readers.read_batches(str(path), "parquet", EVENTS))
    assert caught.value.path == str(path)
    assert caught.value.reason.startswith("unreadable parquet: ")


def test_partitioned_directory_mixed_formats_and_dates(tmp_path):
    day1 = tmp_path / "events" / "dt=2026-01-01"
    day2 = tmp_path / "events" / "dt=2026-01-02"
    day1.mkdir(parents=True)
    day2.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "event_id": ["a"],
                "ts": [1767225600000],
                "user_id": ["u"],
                "item_id": ["i"],
                "event_type": ["impression"],
                "request_id": ["r"],
                "position": [0],
            }
        ),
        day1 / "part-00000.parquet",
    )
    (day2 / "late-00000.json").write_text(
        '{"event_id": "b", "ts": "2026-01-02T00:00:00Z", "user_id": "u", "item_id": "i",'
        ' "event_type": "click", "request_id": "r"}\n'
    )
    (day2 / "_SUCCESS").write_text("")
    files = readers.discover(tmp_path, "events")
    assert files == [
        readers.RawFile(str(day1 / "part-00000.parquet"), "parquet", "2026-01-01"),
        readers.RawFile(str(day2 / "late-00000.json"), "jsonl", "2026-01-02"),
    ]
    assert readers.discover(tmp_path, "events", dates=("2026-01-02", "2026-01-31")) == files[1:]
    table = readers.read_table(tmp_path, "events")
    assert table.schema == readers.contract_schema(EVENTS)
    assert table.select(["event_id", "ts", "event_type", "position"]).to_pylist() == [
        {"event_id": "a", "ts": 1767225600000, "event_type": "impression", "position": 0},
        {"event_id": "b", "ts": 1767312000000, "event_type": "click", "position": None},
    ]
    with pytest.raises(ValueError, match="inside dates 2025-01-01..2025-01-31"):
        readers.discover(tmp_path, "events", dates=("2025-01-01", "2025-01-31"))


def test_missing_tables_and_bad_files(tmp_path):
    with pytest.raises(ValueError) as err:
        readers.discover(tmp_path, "events")
    assert str(err.value) == (
        f"no 'events' files in {tmp_path}: expected {tmp_path}/events.parquet (or .csv, "
        f".jsonl, .json) or files under {tmp_path}/events/, optionally in dt=YYYY-MM-DD/ "
        "partitions"
    )
    assert readers.discover(tmp_path, "items") == []
    assert readers.read_table(tmp_path, "users").num_rows == 0
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "part.csv.gz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"part.csv.gz: unsupported file type"):
        readers.discover(tmp_path, "events")
    with pytest.raises(ValueError, match="unknown table 'clicks'"):
        readers.discover(tmp_path, "clicks")


def test_file_obj_and_side_tables(tmp_path):
    buffer = io.BytesIO()
    pq.write_table(
        pa.table(
            {"item_id": ["i1", "i2"], "price": [9.99, None], "created_ts": ["2026-01-01", None]}
        ),
        buffer,
    )
    buffer.seek(0)
    batches = list(
        readers.read_batches("gs://bucket/items.parquet", "parquet", schema.ITEMS, file_obj=buffer)
    )
    typed = readers.to_contract_types(batches[0], schema.ITEMS).to_pylist()
    assert typed == [
        {
            "item_id": "i1",
            "category": None,
            "brand": None,
            "price": 9.99,
            "created_ts": 1767225600000,
            "_file": "gs://bucket/items.parquet",
            "_row": 0,
        },
        {
            "item_id": "i2",
            "category": None,
            "brand": None,
            "price": None,
            "created_ts": None,
            "_file": "gs://bucket/items.parquet",
            "_row": 1,
        },
    ]


def test_timestamp_and_number_parsing_edge_cases():
    texts = {
        "ts": [
            "1700000000000",
            "2023-11-14T22:13:20+0100",
            "2023-02-30T00:00:00",
            "2023-11-14",
            " 17 ",
            None,
        ],
        "position": ["5.0", "5.5", "-1", "1e3", "inf", ""],
        "dwell_s": ["1e-3", "-inf", "NaN", "1.5.2", ".5", "  2 "],
    }
    batch = pa.RecordBatch.from_pydict({c: texts.get(c, [None] * 6) for c in EVENTS.column_names})
    typed = readers.to_contract_types(batch, EVENTS)
    assert typed.column("ts").to_pylist() == [
        1700000000000,
        1699996400000,
        None,  # February 30th: the row-by-row fallback also rejects it
        1699920000000,
        17,
        None,
    ]
    assert typed.column("position").to_pylist() == [5, None, -1, 1000, None, None]
    dwell = typed.column("dwell_s").to_pylist()
    assert dwell[0] == 0.001 and dwell[1] == float("-inf") and dwell[2] != dwell[2]
    assert dwell[3:] == [None, 0.5, 2.0]


class ReadOnlyHandle:
    """Like Beam's CompressedFile: read/readline only, not iterable, not an io stream."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._buffer.read(n)

    def readline(self) -> bytes:
        return self._buffer.readline()

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", b"event_id,ts\na,1\nb,2026-01-01\n"),
        ("jsonl", b'{"event_id":"a","ts":1}\n{"event_id":"b","ts":"2026-01-01"}\n'),
        ("parquet", None),
    ],
)
def test_read_only_handles(fmt, data):
    if data is None:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"event_id": ["a", "b"], "ts": ["1", "2026-01-01"]}), buffer)
        data = buffer.getvalue()
    batches = readers.read_batches("gs://b/x", fmt, EVENTS, file_obj=ReadOnlyHandle(data))
    typed = [readers.to_contract_types(b, EVENTS) for b in batches]
    assert [
        r for b in typed for r in b.select(["event_id", "ts", "_file", "_row"]).to_pylist()
    ] == [
        {"event_id": "a", "ts": 1, "_file": "gs://b/x", "_row": 0},
        {"event_id": "b", "ts": 1767225600000, "_file": "gs://b/x", "_row": 1},
    ]


def test_parquet_native_types_become_text(tmp_path):
    moment = datetime.datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=datetime.UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(["u1", "u2"]).dictionary_encode(),
                "country": pa.array(["DE", None], pa.large_string()),
                "signup_ts": pa.array([moment, None], pa.timestamp("us", tz="UTC")),
            }
        ),
        tmp_path / "users.parquet",
    )
    raw = raw_rows(tmp_path, schema.USERS, "users")
    assert [(r["user_id"], r["country"], r["signup_ts"]) for r in raw] == [
        ("u1", "DE", "2026-01-01 00:00:01.500000Z"),
        ("u2", None, None),
    ]
    typed = typed_rows(tmp_path, schema.USERS, "users")
    assert [r["signup_ts"] for r in typed] == [1767225601500, None]


def test_ragged_tsv_rows_are_malformed_too(tmp_path):
    (tmp_path / "events.tsv").write_text("event_id\tts\ne1\t1\ne2\t2\textra\n")
    raw = raw_rows(tmp_path)
    assert [(r["event_id"], r["_row"]) for r in raw[:1]] == [("e1", 0)]
    assert (raw[1]["_raw"], raw[1]["_line"], raw[1]["_malformed"]) == (
        "e2\t2\textra",
        3,
        "has 3 fields, the header has 2",
    )


def test_a_csv_row_that_is_not_utf8_is_malformed_and_the_others_stay(tmp_path):
    (tmp_path / "events.csv").write_bytes(
        b"event_id,ts,user_id\ne1,1,u1\ne2,2,u\xff\xfe\ne3,3,u3\n"
    )
    raw = raw_rows(tmp_path)
    assert [(r["event_id"], r["user_id"], r["_row"]) for r in raw[:2]] == [
        ("e1", "u1", 0),
        ("e3", "u3", 2),
    ]
    assert {k: raw[2][k] for k in ("_row", "_line", "_raw", "_malformed")} == {
        "_row": 1,
        "_line": 3,
        "_raw": "e2,2,u\ufffd\ufffd" + "," * (len(EVENTS.column_names) - 3),
        "_malformed": "not valid UTF-8",
    }
