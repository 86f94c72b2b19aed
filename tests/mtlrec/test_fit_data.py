"""Tasks and features follow the columns of a pre-joined table."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtlrec.cli import main
from mtlrec.config import ConfigError, validate
from mtlrec.features.readers import RawFile, column_names
from mtlrec.fit_data import detected_ts_unit, fit

MOVIELENS = {"event_id", "user_id", "item_id", "ts", "rating", "genres", "gender", "age_bucket"}


def test_default_tasks_and_features_without_their_columns_are_switched_off():
    document, notes = fit({}, MOVIELENS)
    config = validate(document)
    assert [(t.name, t.retrieval_on_clicks) for t in config.tasks] == [("retrieval", False)]
    assert config.features.enabled == ("user_id", "item_id", "age_bucket", "hour", "weekday")
    assert config.export.score_weights == {} and config.evaluation.min_metrics == {}
    assert notes == [
        "task retrieval: every row is a positive pair (no click column)",
        "task click: off, the data has no 'click' column",
        "task purchase: off, the data has no 'purchase' column",
        "task dwell: off, the data has no 'dwell_s' column",
        "features ['device', 'country', 'category', 'brand', 'price', 'position']: off, the "
        "data has no column for them",
    ]


def test_a_click_and_watch_time_log_keeps_click_and_dwell():
    columns = {"user_id", "item_id", "ts", "click", "dwell_s", "device", "position"}
    config = validate(fit({}, columns)[0])
    assert [t.name for t in config.tasks] == ["retrieval", "click", "dwell"]
    assert config.tasks[0].retrieval_on_clicks
    assert config.export.score_weights == {"click": 1.0}
    assert config.evaluation.min_metrics == {"click.auc": 0.55}


def test_a_purchase_log_without_clicks_keeps_purchase_without_its_parent():
    config = validate(fit({}, {"user_id", "item_id", "ts", "purchase"})[0])
    assert [(t.name, t.esmm_parent) for t in config.tasks] == [
        ("retrieval", None),
        ("purchase", None),
    ]


def test_what_the_config_names_explicitly_must_be_in_the_data():
    tasks = {"tasks": [{"name": "click", "kind": "binary", "label": "click"}]}
    with pytest.raises(ConfigError, match=r"tasks.click.label: no column 'click' in the data"):
        fit(tasks, MOVIELENS)
    features = {"features": {"enabled": ["user_id", "item_id", "price"]}}
    with pytest.raises(ConfigError, match=r"features.enabled: \['price'\] need columns"):
        fit(features, MOVIELENS)


def test_column_names_read_only_the_header(tmp_path):
    pq.write_table(pa.table({"uid": ["u"], "ts": [1]}), tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text('uid,ts,"is click"\nu,1,0\n')
    (tmp_path / "a.jsonl").write_text('\n{"uid": "u", "ts": 1}\nnot json\n')
    assert column_names(RawFile(str(tmp_path / "a.parquet"), "parquet", None)) == ("uid", "ts")
    assert column_names(RawFile(str(tmp_path / "a.csv"), "csv", None)) == ("uid", "ts", "is click")
    assert column_names(RawFile(str(tmp_path / "a.jsonl"), "jsonl", None)) == ("uid", "ts")


def test_the_cli_fits_a_mapped_pre_joined_csv(tmp_path, capsys):
    (tmp_path / "interactions.csv").write_text("event_id,uid,item_id,ts,is_click\ne1,u,i,1,0\n")
    mapping = "data.interactions={table: interactions, columns: {user_id: uid, click: is_click}}"
    assert main(["config", "show", "--data", str(tmp_path), "--set", mapping]) == 0
    captured = capsys.readouterr()
    assert "- name: click" in captured.out and "- name: purchase" not in captured.out
    assert "mtlrec: note: task purchase: off, the data has no 'purchase' column" in captured.err


@pytest.mark.parametrize(
    ("first", "unit"),
    [
        ("1704067200", "s"),
        ("1704067200000", None),
        ("1704067200000000", "us"),
        ("2024-01-01", None),
    ],
)
def test_the_timestamp_unit_is_detected_from_the_values(tmp_path, first, unit):
    (tmp_path / "interactions.csv").write_text(f"event_id,user_id,item_id,time\ne1,u,i,{first}\n")
    config = validate({"data": {"raw_dir": str(tmp_path), "columns": {"ts": "time"}}})
    assert detected_ts_unit(config) == unit
