"""Which counts stop the validate step: bad files (SPEC §11)."""

import pytest

from mtlrec.pipeline.step_counts import BadFilesError, check_bad_files, validate_counts


def test_bad_files_of_an_optional_table_or_among_good_ones_are_warnings():
    totals = {
        "events": {"read": 5, "bad_files": {"e/b.csv": "empty file (0 bytes)"}},
        "items": {"read": 0, "bad_files": {"items.parquet": "unreadable parquet: footer"}},
    }
    files = {"events": ["e/a.csv", "e/b.csv"], "items": ["items.parquet"]}
    assert check_bad_files(totals, files, {"events"}) == [
        "skipped bad events file e/b.csv: empty file (0 bytes)",
        "skipped bad items file items.parquet: unreadable parquet: footer",
    ]
    counts = validate_counts(totals, "events", "dl")
    assert counts["bad_files"] == 2
    assert counts["bad_file_reasons"] == {
        "e/b.csv": "empty file (0 bytes)",
        "items.parquet": "unreadable parquet: footer",
    }


def test_every_file_of_the_required_table_bad_is_one_line():
    totals = {"events": {"bad_files": {"b.csv": "empty file (0 bytes)", "a.parquet": "x"}}}
    with pytest.raises(BadFilesError) as error:
        check_bad_files(totals, {"events": ["a.parquet", "b.csv"]}, {"events"})
    assert str(error.value) == (
        "no readable 'events' file: a.parquet (x); b.csv (empty file (0 bytes))"
    )
