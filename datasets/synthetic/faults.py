"""The second producer's JSON Lines file: other-surface clicks, injected bad rows, duplicates.

Bad rows are fabricated events with exactly one defect each, so every one maps to a
single `schema.RejectReason`; duplicates are exact copies of good rows, half of them with
the timestamp written as an ISO-8601 string (the same instant).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from mtlrec.datasets.synthetic.events import Events
from mtlrec.datasets.synthetic.world import DEVICES, World
from mtlrec.features import schema

BAD_ROW_RATE = 0.002
DUPLICATE_RATE = 0.003
R = schema.RejectReason
# Reasons injected; out_of_range depends on the run's date window, not on the row.
INJECTED = (R.MISSING_FIELD, R.BAD_TIMESTAMP, R.UNKNOWN_EVENT_TYPE, R.BAD_VALUE, R.EMPTY_ID)
_EVENT_TYPES = schema.EVENT_TYPES  # index = Events["kind"]


def iso_ms(ts: int) -> str:
    moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def records(events: Events, iso: np.ndarray | None = None) -> list[dict]:
    """Contract rows (JSON-ready dicts; null fields omitted) of integer-coded events."""
    rows = []
    for i in range(len(events["kind"])):
        ts = int(events["ts"][i])
        row: dict = {
            "event_id": f"e{events['seq'][i]}",
            "ts": iso_ms(ts) if iso is not None and iso[i] else ts,
            "user_id": f"u{events['user'][i]}",
            "item_id": f"i{events['item'][i]}",
            "event_type": _EVENT_TYPES[events["kind"][i]],
        }
        if events["request"][i] >= 0:
            row["request_id"] = f"r{events['request'][i]}"
        if events["position"][i] >= 0:
            row["position"] = int(events["position"][i])
        if not np.isnan(events["dwell"][i]):
            row["dwell_s"] = float(events["dwell"][i])
        if events["device"][i] >= 0:
            row["device"] = DEVICES[events["device"][i]]
        if not np.isnan(events["revenue"][i]):
            row["revenue"] = float(events["revenue"][i])
        rows.append(row)
    return rows


def _bad_row(rng: np.random.Generator, reason: R, base: dict) -> dict:
    """`base` (a valid impression) with one defect of `reason`."""
    row = dict(base)
    variant = int(rng.integers(0, 3))
    if reason is R.MISSING_FIELD:
        del row[("user_id", "position", "request_id")[variant]]
    elif reason is R.BAD_TIMESTAMP:
        row["ts"] = ("not-a-time", "2026-13-45T99:00:00Z", "yesterday")[variant]
    elif reason is R.UNKNOWN_EVENT_TYPE:
        row["event_type"] = ("view", "add_to_cart", "like")[variant]
    elif reason is R.BAD_VALUE:
        if variant == 2:
            row["position"] = -1
        else:  # a click with a negative or NaN dwell (json writes NaN as a bare token)
            row.update(event_type="click", dwell_s=(-3.5, float("nan"))[variant])
            del row["position"]
    else:
        row[("event_id", "user_id", "item_id")[variant]] = ""
    return row


def bad_rows(
    rng: np.random.Generator,
    world: World,
    good: int,
    day_start_ms: int,
    first_seq: int,
    first_request: int,
    force_all: bool,
) -> list[tuple[R, dict]]:
    """Fabricated bad rows for a day with `good` good events (all reasons when `force_all`)."""
    reasons = list(INJECTED) if force_all else []
    reasons += [
        INJECTED[i] for i in rng.integers(0, len(INJECTED), rng.binomial(good, BAD_ROW_RATE))
    ]
    out = []
    for n, reason in enumerate(reasons):
        base = {
            "event_id": f"e{first_seq + n}",
            "ts": int(day_start_ms + rng.integers(0, 86_400_000)),
            "user_id": f"u{rng.integers(0, world.num_users)}",
            "item_id": f"i{rng.integers(0, world.num_items)}",
            "event_type": "impression",
            "request_id": f"r{first_request + n}",
            "position": int(rng.integers(0, 10)),
            "device": DEVICES[int(rng.integers(0, len(DEVICES)))],
        }
        out.append((reason, _bad_row(rng, reason, base)))
    return out


def duplicates(rng: np.random.Generator, good: Events) -> list[dict]:
    """Exact copies of ~DUPLICATE_RATE of the good events, half with an ISO timestamp."""
    n = rng.binomial(len(good["kind"]), DUPLICATE_RATE)
    picked = np.sort(rng.choice(len(good["kind"]), n, replace=False))
    return records({k: v[picked] for k, v in good.items()}, iso=rng.random(n) < 0.5)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
