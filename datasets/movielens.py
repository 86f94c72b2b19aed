"""MovieLens 100K / 1M → the pre-joined interactions form of the raw contract (SPEC §4).

One row per rating: `<out>/interactions/part-00000.parquet` with event_id, user_id,
item_id, ts (int64 ms), rating, genres ('|'-joined names), gender, occupation,
age_bucket and release_year. Ages of 100K are bucketed like 1M's age codes so both
sets share one vocabulary. The files are read from where the user keeps them and never
copied (their licence forbids redistribution).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mtlrec.features.schema import DATA_DESCRIPTION

ML_100K = ("u.data", "u.item", "u.user", "u.genre")
ML_1M = ("ratings.dat", "movies.dat", "users.dat")
# 1M's age codes (its README); 100K ages are mapped onto the same buckets.
AGE_BUCKETS = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}
OCCUPATIONS_1M = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.int64()),
        ("rating", pa.float64()),
        ("genres", pa.string()),
        ("gender", pa.string()),
        ("occupation", pa.string()),
        ("age_bucket", pa.string()),
        ("release_year", pa.float64()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def _read(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    """A latin-1 file of `sep`-separated string fields (no quoting in MovieLens files)."""
    # split("\n"), not splitlines(): latin-1 byte 0x85 decodes to a character splitlines breaks on
    lines = pd.Series(path.read_text(encoding="latin-1").split("\n")).str.rstrip("\r")
    lines = lines[lines.str.strip() != ""]
    fields = lines.str.split(sep, regex=False)
    wrong = fields.str.len() != len(names)
    if wrong.any():
        row = wrong.idxmax()
        raise ValueError(
            f"{path}: line {row + 1} has {len(fields[row])} {sep!r}-separated fields, "
            f"expected {len(names)} ({', '.join(names)})"
        )
    return pd.DataFrame(fields.tolist(), columns=names)


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(
            f"{path}: record {row + 1}: {column} {frame[column][row]!r} is not a number"
        )
    return values


def _age_bucket(age: pd.Series) -> pd.Series:
    lower = np.array(sorted(AGE_BUCKETS))
    index = np.maximum(np.searchsorted(lower, age.to_numpy(), side="right") - 1, 0)
    return pd.Series(np.array([AGE_BUCKETS[a] for a in lower])[index], index=age.index)


def _year_from_title(title: pd.Series) -> pd.Series:
    return pd.to_numeric(title.str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")


def _ratings(path: Path, sep: str) -> pd.DataFrame:
    ratings = _read(path, sep, ["user_id", "item_id", "rating", "seconds"])
    ts = _numbers(ratings, "seconds", path).astype(np.int64) * 1000
    return ratings[["user_id", "item_id"]].assign(ts=ts, rating=_numbers(ratings, "rating", path))


def _ml_100k(src: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    genre_names = _read(src / "u.genre", "|", ["name", "index"])["name"].tolist()
    items = _read(src / "u.item", "|", ["item_id", "title", "date", "video", "url", *genre_names])
    flags = items[genre_names].to_numpy() == "1"
    items["genres"] = ["|".join(np.array(genre_names)[row]) or None for row in flags]
    released = pd.to_datetime(items["date"], format="%d-%b-%Y", errors="coerce").dt.year
    items["release_year"] = released.fillna(_year_from_title(items["title"]))
    path = src / "u.user"
    users = _read(path, "|", ["user_id", "age", "gender", "occupation", "zip"])
    users["age_bucket"] = _age_bucket(_numbers(users, "age", path))
    return _ratings(src / "u.data", "\t"), items, users


def _ml_1m(src: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    items = _read(src / "movies.dat", "::", ["item_id", "title", "genres"])
    items["genres"] = items["genres"].replace("", None)
    items["release_year"] = _year_from_title(items["title"])
    path = src / "users.dat"
    users = _read(path, "::", ["user_id", "gender", "age", "occupation", "zip"])
    age = _numbers(users, "age", path)
    occupation = _numbers(users, "occupation", path)
    if not age.isin(list(AGE_BUCKETS)).all():
        raise ValueError(f"{path}: unknown age code(s); 1M codes are {sorted(AGE_BUCKETS)}")
    if not occupation.isin(range(len(OCCUPATIONS_1M))).all():
        raise ValueError(f"{path}: occupation codes must be 0..{len(OCCUPATIONS_1M) - 1}")
    users["age_bucket"] = age.map(AGE_BUCKETS)
    users["occupation"] = occupation.map(dict(enumerate(OCCUPATIONS_1M)))
    return _ratings(src / "ratings.dat", "::"), items, users


def _detect(src: Path):
    if (src / "u.data").exists():
        files, reader = ML_100K, _ml_100k
    elif (src / "ratings.dat").exists():
        files, reader = ML_1M, _ml_1m
    else:
        raise ValueError(f"{src}: no MovieLens files: expected u.data (100K) or ratings.dat (1M)")
    missing = [name for name in files if not (src / name).is_file()]
    if missing:
        raise ValueError(f"{src}: missing MovieLens file(s): {', '.join(missing)}")
    return reader


def _unique(frame: pd.DataFrame, key: str, what: str) -> None:
    repeated = frame[key][frame[key].duplicated()]
    if len(repeated):
        raise ValueError(f"MovieLens {what} file lists {key} {repeated.iloc[0]!r} twice")


PRESET = "movielens"
"""The configuration preset (mtlrec.presets) this importer's output is meant for."""


def import_movielens(src: str | Path, out_dir: str | Path) -> dict:
    """Converts MovieLens 100K or 1M in `src` (detected by its files) into `out_dir`.

    Returns counts {ratings, users, items} (users and items that appear in the ratings).
    """
    src, out = Path(src), Path(out_dir) / "interactions"
    ratings, items, users = _detect(src)(src)
    _unique(items, "item_id", "movie")
    _unique(users, "user_id", "user")
    if out.exists():
        raise ValueError(f"{out} already exists: remove it or choose another output directory")
    frame = ratings.assign(
        event_id=ratings["user_id"] + "-" + ratings["item_id"] + "-" + ratings["ts"].astype(str)
    )
    frame = frame.merge(items[["item_id", "genres", "release_year"]], on="item_id", how="left")
    frame = frame.merge(
        users[["user_id", "gender", "occupation", "age_bucket"]], on="user_id", how="left"
    )
    out.mkdir(parents=True)
    table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    pq.write_table(table, out / "part-00000.parquet")
    # `mtlrec run --data` reads it and applies the MovieLens preset.
    (Path(out_dir) / DATA_DESCRIPTION).write_text(f"preset: {PRESET}\n")
    return {
        "ratings": len(frame),
        "users": int(frame["user_id"].nunique()),
        "items": int(frame["item_id"].nunique()),
    }
