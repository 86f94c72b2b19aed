"""`mtlrec backfill`: the daily job for each day of a range, in order, each from the last.

Day D is an ordinary run with `data.date = D` (its window and split follow
`data.train_days` / `data.test_days`) in the run directory named after the day, so a
backfill interrupted on any day goes on from there: finished days are skipped step by step
(their fingerprints are unchanged), the interrupted day resumes. Unless the configuration
says otherwise, every day warm-starts from the latest blessed day before it
(`training.warm_start: last_blessed`).
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Iterator

from mtlrec import log
from mtlrec.config import Config
from mtlrec.manifest import MANIFEST, read
from mtlrec.run import run
from mtlrec.runs import status
from mtlrec.steps import LAST_BLESSED


@dataclasses.dataclass(frozen=True)
class Day:
    """One day of the plan: its run id, window, split and what it starts from."""

    date: str
    run_id: str
    start: str | None
    end: str | None
    split_ts: str | int | None
    warm_start: str | None
    status: str


def days(start: str, end: str) -> Iterator[str]:
    """Every date from `start` to `end`, inclusive.

    Raises:
      ValueError: a bad date, or `end` before `start`.
    """
    try:
        first, last = datetime.date.fromisoformat(start), datetime.date.fromisoformat(end)
    except ValueError:
        raise ValueError(
            f"backfill: --start {start!r} / --end {end!r}: expected YYYY-MM-DD"
        ) from None
    if last < first:
        raise ValueError(f"backfill: --end {end} is before --start {start}")
    for offset in range((last - first).days + 1):
        yield (first + datetime.timedelta(days=offset)).isoformat()


def day_config(config: Config, date: str) -> Config:
    """The configuration of day `date`: dated, warm-starting unless told otherwise."""
    data = config.data.model_copy(update={"date": date, "start": None, "end": None})
    data = type(data).model_validate(data.model_dump(exclude_none=True))
    training = config.training
    if training.warm_start is None:
        training = training.model_copy(update={"warm_start": LAST_BLESSED})
    return config.model_copy(update={"data": data, "training": training})


def plan(config: Config, start: str, end: str) -> list[Day]:
    """The days to run, with each one's window and whether it already finished."""
    workdir = pathlib.Path(config.runner.workdir)
    out = []
    for date in days(start, end):
        c = day_config(config, date)
        manifest = read(workdir / "runs" / date / MANIFEST)
        out.append(
            Day(
                date,
                date,
                c.data.start,
                c.data.end,
                c.data.split_ts,
                c.training.warm_start,
                status(manifest) if manifest else "not run",
            )
        )
    return out


def backfill(config: Config, start: str, end: str, *, dry_run: bool = False) -> list[Day]:
    """Runs (or with `dry_run` only prints) the plan; returns it."""
    days_ = plan(config, start, end)
    for day in days_:
        log.event(
            f"backfill {day.date}: {day.status}",
            window=f"{day.start}..{day.end}",
            split_ts=day.split_ts if day.split_ts is not None else "quantile",
            warm_start=day.warm_start,
        )
    if dry_run:
        return days_
    for day in days_:
        log.event(f"backfill {day.date}: running", run_id=day.run_id)
        run(day_config(config, day.date), run_id=day.run_id)
    return days_
