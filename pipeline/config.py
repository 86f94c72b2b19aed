"""The `data` section the Beam jobs read, and the sections one job is given.

The root document (`mtlrec.config.Config`) extends `DataConfig` with where the logs come
from; the jobs see only these sections, never the root configuration.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Literal

import pydantic

from mtlrec.features.config import ConfigSection, FeaturesConfig


class InteractionsConfig(ConfigSection):
    """A pre-joined interactions table (one row per impression with label columns)."""

    table: str = "interactions"
    """Table name: files <raw_dir>/<table>.{parquet,csv,jsonl} or <raw_dir>/<table>/..."""
    columns: dict[str, str] = {}
    """Mapping joined-example column -> column in the file, for names that differ."""


class DataConfig(ConfigSection):
    """Labels (the join), the date window and the time split (SPEC §4, §5, §11)."""

    columns: dict[str, str] = {}
    """Contract column -> the name in your files (e.g. {user_id: uid, ts: time_ms}), for every
    table (events, items, users or the pre-joined one; data.interactions.columns wins there)."""
    ts_unit: Literal["s", "ms", "us"] | None = None
    """Unit of numeric timestamps in the files; null = ms (`mtlrec run` detects s and us from
    the values of a pre-joined table and says so). ISO-8601 text needs no unit."""
    units: dict[str, Literal["min", "s", "ms", "us"]] = {}
    """Unit of a duration column in the files, by contract name (e.g. {dwell_s: ms})."""

    interactions: InteractionsConfig | None = None
    """Read a pre-joined interactions table instead of events (MovieLens, KuaiRand style)."""
    date: str | None = None
    """The run's day (YYYY-MM-DD, UTC), e.g. a scheduler's logical date: the window ends on it
    (`end` defaults to it) and, with `train_days`, starts `train_days` - 1 days before."""
    train_days: int | None = pydantic.Field(default=None, ge=1)
    """Days of partitions a dated run reads, ending on `date` (a rolling window); null = the
    date alone (or the whole directory without a date)."""
    test_days: int | None = pydantic.Field(default=None, ge=1)
    """The last `test_days` days of a dated run's window are its test split (`split_ts`
    defaults to their first midnight); null = the eval_fraction quantile."""
    start: str | None = None
    """First date (YYYY-MM-DD, UTC) of the run's window; rows before it are out_of_range."""
    end: str | None = None
    """Last date (YYYY-MM-DD, UTC, inclusive) of the run's window; rows after it are out_of_range."""
    min_ts: int | None = None
    """Earliest plausible event time (ms, inclusive); earlier rows are out_of_range.
    null = 365 days before the earliest `dt=` partition read (no bound without partitions)."""
    max_ts: int | None = None
    """Latest plausible event time (ms, inclusive); later rows are out_of_range.
    null = the run's wall clock (read once by the driver) + future_tolerance_s."""
    future_tolerance_s: int = pydantic.Field(default=86400, ge=0)
    """How far past the run's wall clock an event may lie when max_ts is null."""
    partition_tolerance_s: int | None = pydantic.Field(default=86400, ge=0)
    """A row under a `dt=` partition whose ts is more than this from the partition's day is
    out_of_range; null = no check."""
    split_ts: str | int | None = None
    """Train/eval boundary (ISO-8601 or ms); null = the event time from which the latest
    eval_fraction of the accepted events lie."""
    eval_fraction: float = pydantic.Field(default=0.2, gt=0.0, lt=1.0)
    """Fraction of the accepted events, the latest by time, whose span is the evaluation (test)
    split when split_ts is null: a quantile by rows, so clock-skewed rows cannot move it."""
    validation_fraction: float = pydantic.Field(default=0.1, gt=0.0, lt=1.0)
    """Fraction of the examples before the test split, the latest by time, that form the
    validation split: early stopping, best-epoch restore and tuning read it, never the test."""
    click_window_s: int = pydantic.Field(default=1800, ge=0)
    """A click labels its impression when it follows within this many seconds."""
    attribution_window_s: int = pydantic.Field(default=86400, ge=0)
    """A purchase is attributed to the last click on the item within this many seconds."""
    max_value_chars: int = pydantic.Field(default=256, ge=1)
    """Ids and other text values longer than this many characters are rejected as bad_value."""
    max_bad_fraction: float = pydantic.Field(default=0.01, ge=0.0, le=1.0)
    """Stop before training when more than this fraction of rows is rejected."""
    max_bad_files_fraction: float = pydantic.Field(default=0.5, ge=0.0, le=1.0)
    """Stop before training when more than this fraction of a table's files is empty or
    unreadable (one bad file among good ones is counted, skipped and warned of)."""
    orphan_clicks_to_retrieval: bool = False
    """Clicks that join no impression become extra retrieval-only training examples."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _dated_window(cls, values: Any) -> Any:
        """`date` (+ `train_days`, `test_days`) fills `end`, `start` and `split_ts` when unset.
        Dates YAML read as dates (`--set data.start=2026-01-05`) become their ISO text."""
        if not isinstance(values, dict):
            return values
        values = {
            k: v.isoformat() if isinstance(v, datetime.date) and k in _DATE_KEYS else v
            for k, v in values.items()
        }
        if values.get("date") is None:
            return values
        day = _parse_day(values["date"], "date")
        window = values.get("train_days") or 1
        filled = {"end": day.isoformat(), "start": (day - _days(window - 1)).isoformat()}
        if values.get("test_days"):
            filled["split_ts"] = (day - _days(values["test_days"] - 1)).isoformat()
        given = {k: v for k, v in values.items() if v is not None}
        return {**filled, **given, "date": day.isoformat()}

    def partition_window(self) -> tuple[str, str] | None:
        """Inclusive (start, end) dates of the `dt=` partitions to read; None reads them all."""
        if self.start is None and self.end is None:
            return None
        return (self.start or "0000-01-01", self.end or "9999-12-31")


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """What the validate and preprocess jobs read: their sections and the Beam options."""

    data: DataConfig
    features: FeaturesConfig
    labels: tuple[str, ...]
    """Label columns the configured tasks train on."""
    beam_args: tuple[str, ...]
    """Beam pipeline options, passed unchanged."""
    now_ms: int | None = None
    """The run's wall clock (ms), read once by the driver: the default `data.max_ts` bound.
    Workers never read the clock."""


_DATE_KEYS = ("date", "start", "end", "split_ts")


def _days(n: int) -> datetime.timedelta:
    return datetime.timedelta(days=n)


def _parse_day(value: Any, field: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a date YYYY-MM-DD") from None
