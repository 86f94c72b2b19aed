"""Synthetic shop logs in the raw contract (SPEC §4), with the exact truth the pipeline must report.

Output of `generate(out_dir, ...)`:
  events/dt=YYYY-MM-DD/part-00000.parquet  the shop's page events of that day (ts int64 ms)
  events/dt=YYYY-MM-DD/late-00000.jsonl    a second producer: clicks from other surfaces,
                                           injected bad rows and duplicate rows
  items/part-00000.parquet, users/part-00000.parquet, truth.json

The traffic: users (heavy-tailed activity) open pages on a device; each page shows up to
10 items (Gumbel top-k of Zipf popularity + user/item affinity, best first). The true
click probability is sigmoid(bias + a·u·v + item quality + device effect − price effect) ×
(1 + position)^−0.7 (a, the exponents, the factors' dimension and the purchase factors'
share of the click factors are `params.WorldParams`); clicks follow after seconds to minutes (~3 % after 30 min), ~4 %
are clicked twice, ~10 % have no dwell; purchase | click ~ sigmoid(bias + u·w − price
effect) after minutes to hours (~7 % after 24 h); plus orphan purchases and clicks from
other surfaces. Days end on END_DATE; events after its end have not happened yet and are
not written. Everything derives from numpy Generator(seed): reruns are byte-identical.

Truth semantics (the Beam validate/join implements the same):
- events_read = rows in all events files; rejected[reason] = the injected bad rows (one
  defect each); duplicates = extra copies of an event_id among valid rows (first copy
  kept); every other row is accepted.
- One example per impression key (request_id, item_id); the generator makes keys unique.
- A click joins when an impression with its (request_id, item_id) exists and
  0 <= click_ts − impression_ts <= 1800 s. clicks_joined = joined click events;
  orphan_clicks = accepted clicks that do not join. An impression's click = 1 when at least
  one click joins; dwell = max dwell_s over its joined clicks that have one; has_dwell = 1
  when any does.
- A purchase is attributed when the same user has a joined click on the same item with
  0 <= purchase_ts − click_ts <= 86400 s; the impression of the last such click (largest
  click_ts) gets purchase = 1. purchases_attributed = attributed purchase events;
  orphan_purchases = the rest.
- split_ts = the event time from which the latest fifth of the accepted events of all types
  lie (sorted ts at row floor(0.8 × n), the product's default `data.eval_fraction`);
  train_examples = impressions with ts < split_ts, eval_examples = the others.
- clicked_impressions / purchased_impressions = impressions with click / purchase = 1.
- oracle.click_auc_eval = AUC of the true click probability against the click label over
  eval impressions; oracle.purchase_auc_eval the same for p_click × p_purchase|click.
Invariant: events_read = duplicates + Σ rejected + impressions + clicks + purchases.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mtlrec.datasets.synthetic import faults as faults
from mtlrec.datasets.synthetic.events import CLICK, IMPRESSION, Events, concat, select, simulate_day
from mtlrec.datasets.synthetic.params import DEFAULT_WORLD, WorldParams
from mtlrec.datasets.synthetic.truth import TruthAccumulator
from mtlrec.datasets.synthetic.world import (
    DEVICES,
    World,
    ids,
    items_table,
    make_world,
    users_table,
)
from mtlrec.features import schema

END_DATE = datetime.date(2026, 1, 31)
DAY_MS = 86_400_000
_EPOCH = datetime.date(1970, 1, 1)


def _strings(values: list[str] | tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """values[code] per row; a negative code is null."""
    return pa.array(np.array(values)[np.maximum(codes, 0)], pa.string(), mask=codes < 0)


def _events_table(events: Events) -> pa.Table:
    """Integer-coded events → the raw contract's columns."""
    request = events["request"]
    return pa.table(
        {
            "event_id": ids("e", events["seq"]),
            "ts": pa.array(events["ts"], pa.int64()),
            "user_id": ids("u", events["user"]),
            "item_id": ids("i", events["item"]),
            "event_type": _strings(schema.EVENT_TYPES, events["kind"]),
            "request_id": pc.if_else(
                pa.array(request >= 0), ids("r", request), pa.scalar(None, pa.string())
            ),
            "position": pa.array(events["position"], pa.int64(), mask=events["position"] < 0),
            "dwell_s": pa.array(events["dwell"], pa.float64(), mask=np.isnan(events["dwell"])),
            "device": _strings(DEVICES, events["device"]),
            "revenue": pa.array(events["revenue"], pa.float64(), mask=np.isnan(events["revenue"])),
        }
    )


def _check_out_dir(out: Path) -> None:
    stale = [name for name in ("events", "items", "users", "truth.json") if (out / name).exists()]
    if stale:
        raise ValueError(
            f"{out} already holds generated data ({', '.join(stale)}): "
            "remove it or choose another output directory"
        )


@dataclasses.dataclass
class _Counters:
    """Next free request id, impression index and event sequence number."""

    request: int = 0
    imp: int = 0
    seq: int = 0


def _simulate(
    rng: np.random.Generator, world: World, day_start: int, end_ms: int, counters: _Counters
) -> Events:
    """The day's events with sequence numbers, minus those after the end of the log."""
    events, used = simulate_day(rng, world, day_start, counters.request, counters.imp)
    counters.request += used
    counters.imp += int((events["kind"] == IMPRESSION).sum())
    events = select(events, events["ts"] < end_ms)
    events["seq"] = counters.seq + np.arange(len(events["ts"]))
    counters.seq += len(events["ts"])
    return events


def _write_day(day_dir: Path, good: Events, late_rows: list[dict]) -> None:
    """Page events to Parquet; other-surface clicks and `late_rows` to the JSON Lines file."""
    other_surface = (good["kind"] == CLICK) & (good["imp"] < 0)
    iso = np.ones(int(other_surface.sum()), bool)
    day_dir.mkdir(parents=True)
    pq.write_table(_events_table(select(good, ~other_surface)), day_dir / "part-00000.parquet")
    late = faults.records(select(good, other_surface), iso=iso) + late_rows
    faults.write_jsonl(day_dir / "late-00000.jsonl", late)


def generate(
    out_dir: str | Path,
    *,
    users: int,
    items: int,
    days: int,
    seed: int,
    world: WorldParams = DEFAULT_WORLD,
    progress: bool = True,
) -> dict:
    """Writes the synthetic logs and truth.json into `out_dir`; returns the truth dict.
    `world` sets the signals' strength and shape (`params.WorldParams`)."""
    if min(users, items, days) < 1:
        raise ValueError(f"users, items and days must be >= 1 (got {users}, {items}, {days})")
    out = Path(out_dir)
    _check_out_dir(out)
    rng = np.random.default_rng(seed)
    start_ms = ((END_DATE - _EPOCH).days - days + 1) * DAY_MS
    end_ms = start_ms + days * DAY_MS
    world_params = world
    world = make_world(rng, users, items, start_ms, world_params)
    for name, table in (("items", items_table(world)), ("users", users_table(world))):
        (out / name).mkdir(parents=True)
        pq.write_table(table, out / name / "part-00000.parquet")

    truth, counters, rejected = (
        TruthAccumulator(),
        _Counters(),
        dict.fromkeys(schema.REJECT_REASONS, 0),
    )
    n_duplicates, pending, started = 0, None, time.perf_counter()
    for day in range(days):
        day_start = start_ms + day * DAY_MS
        events = _simulate(rng, world, day_start, end_ms, counters)
        pending = events if pending is None else concat([pending, events])
        today = pending["ts"] < day_start + DAY_MS  # later clicks/purchases wait for their day
        good, pending = select(pending, today), select(pending, ~today)
        good = select(good, np.lexsort((good["seq"], good["ts"])))
        truth.add(good)
        n_good = len(good["ts"])
        bad = faults.bad_rows(
            rng, world, n_good, day_start, counters.seq, counters.request, day == 0
        )
        counters.seq += len(bad)
        counters.request += len(bad)
        for reason, _ in bad:
            rejected[reason.value] += 1
        copies = faults.duplicates(rng, good)
        n_duplicates += len(copies)
        date = END_DATE - datetime.timedelta(days=days - 1 - day)
        _write_day(out / "events" / f"dt={date.isoformat()}", good, [r for _, r in bad] + copies)
        if progress:
            rate = counters.seq / max(time.perf_counter() - started, 1e-9)
            rows = n_good + len(bad) + len(copies)
            print(
                f"generate: day {day + 1}/{days} dt={date}: {rows} rows ({rate:,.0f} events/s)",
                file=sys.stderr,
            )
    params = {"users": users, "items": items, "days": days, **dataclasses.asdict(world_params)}
    result = {"seed": seed, "params": params}
    result |= truth.finish(rejected, n_duplicates)
    (out / "truth.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result
