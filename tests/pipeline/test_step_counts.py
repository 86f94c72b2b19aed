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


def test_more_bad_files_of_a_table_than_the_limit_allows_is_one_line():
    totals = {
        "events": {"bad_files": {"b.csv": "empty file (0 bytes)"}},
        "items": {"bad_files": {"i.parquet": "unreadable parquet: footer"}},
    }
    files = {"events": ["a.csv", "b.csv", "c.csv"], "items": ["i.parquet"]}
    with pytest.raises(BadFilesError) as error:
        check_bad_files(totals, files, {"events"}, limit=0.5)
    assert str(error.value) == (
        "1 of 1 'items' files are bad, more than data.max_bad_files_fraction=0.5: "
        "i.parquet (unreadable parquet: footer)"
    )
    with pytest.raises(BadFilesError, match="^1 of 3 'events' files are bad, more than"):
        check_bad_files(totals, files, {"events"}, limit=0.3)
    assert len(check_bad_files(totals, files, {"events"}, limit=1.0)) == 2
