"""Column names and units of the user's files, applied to a contract table."""

import pytest

from mtlrec.features import readers, schema
from mtlrec.pipeline import interactions, validate
from mtlrec.pipeline.column_mapping import in_contract_units, in_file_names
from mtlrec.pipeline.config import DataConfig


def test_seconds_and_millisecond_durations_are_read_in_contract_units(tmp_path):
    data = DataConfig(ts_unit="s", units={"dwell_s": "ms"}, columns={"user_id": "uid"})
    contract = in_contract_units(interactions.table("interactions"), data)
    in_files = in_file_names(contract, data.columns)
    path = tmp_path / "log.tsv"
    path.write_text(
        "event_id\tuid\titem_id\tts\tdwell_s\n"
        "e1\tu1\ti1\t1704067200\t1500\n"
        "e2\tu2\ti2\t1704067200.75\t\n"
        "e3\tu3\ti3\t2024-01-01T00:00:01Z\t250\n"
    )
    (raw,) = readers.read_batches(str(path), "tsv", in_files)
    accepted, rejected = validate.validate_batch(
        interactions.to_contract_names(raw, contract), contract
    )
    assert rejected.num_rows == 0
    assert accepted.column("user_id").to_pylist() == ["u1", "u2", "u3"]
    # seconds x 1000 (fractions floored to the ms); ISO-8601 text is not scaled
    assert accepted.column("ts").to_pylist() == [1704067200000, 1704067200750, 1704067201000]
    assert accepted.column("dwell_s").to_pylist() == [1.5, None, 0.25]


def test_one_mapping_serves_every_table():
    events = in_file_names(schema.EVENTS, {"user_id": "uid", "price": "cost"})
    assert "uid" in events.column_names and "user_id" not in events.column_names
    assert events.column_names[1:] == tuple(
        "uid" if c == "user_id" else c for c in schema.EVENTS.column_names[1:]
    )


def test_a_unit_on_a_column_that_is_no_duration_is_an_error():
    with pytest.raises(ValueError, match=r"data.units.price: only durations in seconds"):
        in_contract_units(interactions.table("interactions"), DataConfig(units={"price": "ms"}))
    assert in_contract_units(schema.ITEMS, DataConfig()) == schema.ITEMS
