"""A 7-day backfill, warm-started from each previous blessed day against cold starts.

Both arms run `mtlrec backfill` over the same generated days with a rolling window
(`data.train_days`, the last day the test split); the gate is opened (every day blessed)
so the warm chain never breaks. Per day: the steps' seconds and the test figures.

    python -m bench.backfill [--days 7] [--window 7] [--epochs 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile

from bench.common import format_table, write_results

LAST_DAY = datetime.date(2026, 1, 31)  # the generator's last day
OPEN_GATE = [
    "evaluation.baselines=[popularity]",
    "evaluation.min_metrics={}",
    "evaluation.beat_popularity=false",
    "evaluation.max_regression=1.0",
]
ARMS = {"warm": "training.warm_start=last_blessed", "cold": "training.warm_start=null"}


def backfill(raw: pathlib.Path, workdir: pathlib.Path, first: datetime.date, sets: list[str]):
    command = [sys.executable, "-m", "mtlrec", "backfill", "--data", str(raw)]
    command += ["--workdir", str(workdir), "--start", first.isoformat()]
    command += ["--end", LAST_DAY.isoformat(), *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mtlrec backfill exited {done.returncode}: {done.stderr[-2000:]}")


def day_figures(workdir: pathlib.Path, day: datetime.date) -> dict:
    manifest = json.loads((workdir / "runs" / day.isoformat() / "manifest.json").read_text())
    steps = manifest["steps"]
    metrics = manifest.get("metrics", {})
    warm = steps["train"]["result"].get("warm_start") or {}
    return {
        "day": day.isoformat(),
        "seconds": sum(s.get("seconds", 0.0) for s in steps.values()),
        "train_seconds": steps["train"].get("seconds"),
        "preprocess_seconds": sum(steps[s].get("seconds", 0.0) for s in ("validate", "preprocess")),
        "warm_from": warm.get("source"),
        "click_auc": metrics.get("click", {}).get("auc"),
        "recall@100": metrics.get("retrieval", {}).get("recall@100"),
        "dwell_rmse_s": metrics.get("dwell", {}).get("rmse_s"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--days", type=int, default=7, help="days backfilled (7)")
    parser.add_argument("--window", type=int, default=7, help="data.train_days (7)")
    parser.add_argument("--epochs", type=int, default=2, help="training.epochs (2)")
    args = parser.parse_args(argv)
    first = LAST_DAY - datetime.timedelta(days=args.days - 1)
    sets = [
        f"data.train_days={args.window}",
        "data.test_days=1",
        f"training.epochs={args.epochs}",
        *OPEN_GATE,
    ]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        raw = pathlib.Path(tmp) / "raw"
        generated = subprocess.run(
            [sys.executable, "-m", "mtlrec", "generate", "--out", str(raw),
             "--days", str(args.days + args.window)],
            capture_output=True, text=True,
        )  # fmt: skip
        if generated.returncode != 0:
            raise RuntimeError(generated.stderr[-2000:])
        for arm, warm in ARMS.items():
            print(f"backfill bench: {arm} ...", file=sys.stderr, flush=True)
            workdir = pathlib.Path(tmp) / arm
            backfill(raw, workdir, first, [*sets, warm])
            days = [first + datetime.timedelta(days=i) for i in range(args.days)]
            runs[arm] = [day_figures(workdir, d) for d in days]
    rows = [
        [w["day"], w["seconds"], c["seconds"], w["click_auc"], c["click_auc"],
         w["recall@100"], c["recall@100"]]
        for w, c in zip(runs["warm"], runs["cold"], strict=True)
    ]  # fmt: skip
    columns = ["day", "warm s", "cold s", "warm click AUC", "cold click AUC",
               "warm recall@100", "cold recall@100"]  # fmt: skip
    print(format_table("7-day backfill: warm start against cold, test split", columns, rows))
    print(f"\nwrote {write_results('backfill', {'args': vars(args), 'runs': runs})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
