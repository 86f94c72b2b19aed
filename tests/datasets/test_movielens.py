"""MovieLens importer: 100K from the shared data set, 1M on hand-written lines."""

import pyarrow.parquet as pq
import pytest

from mtlrec.datasets.movielens import COLUMNS, import_movielens
from mtlrec.features.schema import DATA_DESCRIPTION


def _rows(out):
    return pq.read_table(out / "interactions" / "part-00000.parquet").to_pylist()


def test_movielens_100k(movielens_100k, tmp_path):
    counts = import_movielens(movielens_100k, tmp_path)
    assert counts == {"ratings": 100000, "users": 943, "items": 1682}
    assert (tmp_path / DATA_DESCRIPTION).read_text() == "preset: movielens\n"
    table = pq.read_table(tmp_path / "interactions" / "part-00000.parquet")
    assert tuple(table.column_names) == COLUMNS
    assert table.num_rows == 100000
    rows = table.slice(0, 2).to_pylist()  # the first two lines of u.data
    assert rows[0] == {
        "event_id": "196-242-881250949000",
        "user_id": "196",
        "item_id": "242",
        "ts": 881250949000,
        "rating": 3.0,
        "genres": "Comedy",  # Kolya (1996), released 24-Jan-1997
        "gender": "M",
        "occupation": "writer",
        "age_bucket": "45-49",  # age 49
        "release_year": 1997.0,
    }
    assert rows[1] == {
        "event_id": "186-302-891717742000",
        "user_id": "186",
        "item_id": "302",
        "ts": 891717742000,
        "rating": 3.0,
        "genres": "Crime|Film-Noir|Mystery|Thriller",  # L.A. Confidential
        "gender": "F",
        "occupation": "executive",
        "age_bucket": "35-44",  # age 39
        "release_year": 1997.0,
    }
    unknown_movie = table.filter(table.column("item_id").to_numpy(zero_copy_only=False) == "267")
    assert set(unknown_movie.column("release_year").to_pylist()) == {None}  # no date, no year


ML_1M = {
    "ratings.dat": (
        "1::1193::5::978300760\n2::1193::4::978298413\n2::2::3::978299000\n1::3::2::978301000\n"
    ),
    "movies.dat": (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
        "3::Caf\xe9 Society::Comedy\n"
    ),
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}


def _write_1m(root, files=ML_1M):
    root.mkdir()
    for name, text in files.items():
        (root / name).write_bytes(text.encode("latin-1"))
    return root


def test_movielens_1m_format(tmp_path):
    src = _write_1m(tmp_path / "ml-1m")
    counts = import_movielens(src, tmp_path / "out")
    assert counts == {"ratings": 4, "users": 2, "items": 3}
    assert _rows(tmp_path / "out") == [
        {
            "event_id": "1-1193-978300760000",
            "user_id": "1",
            "item_id": "1193",
            "ts": 978300760000,
            "rating": 5.0,
            "genres": "Drama",
            "gender": "F",
            "occupation": "K-12 student",
            "age_bucket": "Under 18",
            "release_year": 1975.0,
        },
        {
            "event_id": "2-1193-978298413000",
            "user_id": "2",
            "item_id": "1193",
            "ts": 978298413000,
            "rating": 4.0,
            "genres": "Drama",
            "gender": "M",
            "occupation": "self-employed",
            "age_bucket": "56+",
            "release_year": 1975.0,
        },
        {
            "event_id": "2-2-978299000000",
            "user_id": "2",
            "item_id": "2",
            "ts": 978299000000,
            "rating": 3.0,
            "genres": "Adventure|Children's|Fantasy",
            "gender": "M",
            "occupation": "self-employed",
            "age_bucket": "56+",
            "release_year": 1995.0,
        },
        {
            "event_id": "1-3-978301000000",
            "user_id": "1",
            "item_id": "3",
            "ts": 978301000000,
            "rating": 2.0,
            "genres": "Comedy",  # title "Caf\xe9 Society" (latin-1) has no year
            "gender": "F",
            "occupation": "K-12 student",
            "age_bucket": "Under 18",
            "release_year": None,
        },
    ]
    with pytest.raises(ValueError, match="interactions already exists"):
        import_movielens(src, tmp_path / "out")


def test_movielens_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no MovieLens files: expected u.data"):
        import_movielens(tmp_path, tmp_path / "out")
    partial = _write_1m(tmp_path / "partial", {k: v for k, v in ML_1M.items() if k != "users.dat"})
    with pytest.raises(ValueError, match="missing MovieLens file\\(s\\): users.dat"):
        import_movielens(partial, tmp_path / "out")
    short = _write_1m(tmp_path / "short", ML_1M | {"ratings.dat": "1::1193::5\n"})
    with pytest.raises(
        ValueError, match="ratings.dat: line 1 has 3 '::'-separated fields, expected 4"
    ):
        import_movielens(short, tmp_path / "out")
    text = _write_1m(tmp_path / "text", ML_1M | {"ratings.dat": "1::1193::five::978300760\n"})
    with pytest.raises(ValueError, match="record 1: rating 'five' is not a number"):
        import_movielens(text, tmp_path / "out")
    assert not (tmp_path / "out").exists()
