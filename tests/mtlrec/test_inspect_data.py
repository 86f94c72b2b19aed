"""`mtlrec inspect` on hand-written logs: exact statistics, rejects and a config that loads."""

import yaml

from mtlrec.cli import main
from mtlrec.config import config_document, validate
from mtlrec.fit_data import adapt
from mtlrec.inspect_data import inspect_tables, proposed_document, report_lines

# A pre-joined click / watch-time log under its own column names; row e3 has no timestamp
# that parses and row e4 an empty item id.
LOG = """event_id,uid,item_id,ts,click,dwell_s
e1,u1,i1,1704067200000,1,12.5
e2,u1,i2,1704067260000,0,
e3,u2,i1,yesterday,1,3.0
e4,u3,,1704153600000,0,
e5,u2,i3,1704153660000,1,40.0
"""
MAPPING = "data.columns={user_id: uid}"


def _inspected(tmp_path):
    (tmp_path / "interactions").mkdir()
    (tmp_path / "interactions" / "part-0.csv").write_text(LOG)
    document = config_document(overrides=[f"data.raw_dir={tmp_path}", MAPPING])
    document, notes = adapt(document, validate(document))
    config = validate(document)
    return document, config, notes, inspect_tables(config)


def test_statistics_and_rejects_of_a_pre_joined_log(tmp_path):
    # Statistics cover the three rows validation accepts (e1, e2, e5).
    *_, (report,) = _inspected(tmp_path)
    assert (report.name, report.files, report.rows) == ("interactions", 1, 5)
    assert report.rejected == {"bad_timestamp": 1, "empty_id": 1}
    by_name = {c["name"]: c for c in report.columns}
    assert by_name["dwell_s"] == {
        "name": "dwell_s",
        "type": "double",
        "nulls": 1,
        "distinct": 2,
        "min": 12.5,
        "max": 40.0,
    }
    assert (by_name["user_id"]["distinct"], by_name["click"]["min"], by_name["click"]["max"]) == (
        2,
        0,
        1,
    )
    assert list(by_name) == ["event_id", "user_id", "item_id", "ts", "click", "dwell_s"]
    assert report.partitions == {"-": (1704067200000, 1704153660000)}


def test_the_proposed_config_follows_the_columns_and_loads(tmp_path):
    document, config, notes, _ = _inspected(tmp_path)
    proposed = validate(proposed_document(document, config))
    assert [t.name for t in proposed.tasks] == ["retrieval", "click", "dwell"]
    assert proposed.features.enabled == ("user_id", "item_id", "hour", "weekday")
    assert dict(proposed.data.columns) == {"user_id": "uid"}
    assert proposed.data.interactions.table == "interactions"
    assert notes[0].endswith(
        "holds no event logs but an 'interactions' table: read as "
        "pre-joined interactions (data.interactions)"
    )
    assert "task purchase: off, the data has no 'purchase' column" in notes


def test_the_cli_prints_the_report_and_writes_the_config(tmp_path, capsys):
    _inspected(tmp_path)
    out = tmp_path / "proposed.yaml"
    assert main(["inspect", "--data", str(tmp_path), "--set", MAPPING, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "interactions: 5 rows in 1 file(s); would reject: bad_timestamp 1, empty_id 1" in printed
    assert "ts: 2024-01-01T00:00:00+00:00 .. 2024-01-02T00:01:00+00:00" in printed
    assert yaml.safe_load(out.read_text())["data"]["raw_dir"] == str(tmp_path)
    assert main(["config", "show", "--config", str(out)]) == 0


def test_bad_files_and_ragged_rows_are_reported_not_fatal(tmp_path):
    (tmp_path / "interactions").mkdir()
    (tmp_path / "interactions" / "part-0.parquet").write_bytes(b"")
    (tmp_path / "interactions" / "part-1.csv").write_text(LOG + "e6,u1\n")
    document = config_document(overrides=[f"data.raw_dir={tmp_path}", MAPPING])
    document, _ = adapt(document, validate(document))
    (report,) = inspect_tables(validate(document))
    empty = str(tmp_path / "interactions" / "part-0.parquet")
    assert report.bad_files == {empty: "empty file (0 bytes)"}
    assert (report.files, report.rows) == (2, 6)
    assert report.rejected == {"bad_timestamp": 1, "empty_id": 1, "malformed_row": 1}
    assert f"  would skip bad file {empty}: empty file (0 bytes)" in report_lines([report])


def test_columns_the_contract_lacks_and_needs_are_named_with_the_way_to_map_them(tmp_path):
    (tmp_path / "interactions").mkdir()
    (tmp_path / "interactions" / "part-0.csv").write_text(
        "id,uid,video,time_s,is_click\ne1,u1,v1,1704067200,1\n"
    )
    document = config_document(overrides=[f"data.raw_dir={tmp_path}", "data.columns={ts: time_s}"])
    document, _ = adapt(document, validate(document))
    (report,) = inspect_tables(validate(document))
    assert report.missing == ("event_id", "user_id", "item_id")
    assert report.unmatched == ("id", "uid", "video", "is_click")
    assert report_lines([report])[1] == (
        "  required columns no file holds: event_id, user_id, item_id; the files' columns no "
        "contract column takes: id, uid, video, is_click; map them with "
        "--set 'data.columns={CONTRACT: YOURS, ...}'"
    )
    (tmp_path / "mapped").mkdir()
    *_, (mapped,) = _inspected(tmp_path / "mapped")
    assert (mapped.missing, mapped.unmatched) == ((), ())
