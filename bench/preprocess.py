"""Preprocessing throughput (events/s) and peak memory: mtlrec vs bare tf.Transform vs pyarrow.

For each size, synthetic logs come from `mtlrec.datasets.synthetic.generate.generate`; then each variant of
`bench.preprocess_variants` runs alone in a child process (its peak memory is its own):
the full mtlrec validate + preprocess job, bare tf.Transform on the Arrow path, and a plain
pyarrow read + tf.Example + TFRecord write. Every variant runs once per round (in an order
that rotates between rounds); ratios pair the variants of one round at one size, and the
tables report medians over the rounds with each round's figure beside them.

    python -m bench.preprocess [--events 1000000] [--rounds 3]   # the default: ~6 min on 2 cores
    python -m bench.preprocess --events 100000 1000000 5000000   # how cost grows: ~30 min
    python -m bench.preprocess --events 1000000 5000000 --variants mtlrec tft   # memory growth
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence

from bench.common import emit_child_result, fmt, format_table, run_child, write_results
from bench.preprocess_variants import VARIANTS
from mtlrec.config import RunnerConfig

# The size the targets are set at; three rounds of it take ~6 minutes on 2 cores.
DEFAULT_EVENTS = (1_000_000,)
# Throughput on a shared machine drifts between minutes: every variant runs once per round,
# ratios pair the variants of one round, and the report takes the median over rounds.
DEFAULT_ROUNDS = 3
_MEDIAN_FIELDS = ("seconds", "events_per_s", "process_seconds", "peak_rss_mb", "peak_tree_rss_mb")
LARGE_EVENTS = 5_000_000
DAYS = 14
# The generator writes about 9.9 events per user per day (measured on its defaults).
EVENTS_PER_USER_DAY = 9.9
# Every variant runs on the product's default runner, so the baselines get the same engine.
BEAM_ARGS = RunnerConfig.model_fields["beam_args"].default


def generate_events(events: int, out_dir: pathlib.Path, seed: int = 7) -> dict:
    """Synthetic logs of about `events` rows (reused when `out_dir` already holds them)."""
    truth_path = out_dir / "truth.json"
    if truth_path.exists():
        return json.loads(truth_path.read_text())
    from mtlrec.datasets.synthetic.generate import generate

    users = max(1, round(events / (EVENTS_PER_USER_DAY * DAYS)))
    return generate(
        out_dir, users=users, items=max(50, users // 2), days=DAYS, seed=seed, progress=False
    )


def measure(variant: str, raw_dir: pathlib.Path, work: pathlib.Path, beam_args) -> dict:
    out = work / variant
    shutil.rmtree(out, ignore_errors=True)
    args = ["--variant", variant, "--data", str(raw_dir), "--out", str(out)]
    child = run_child("bench.preprocess", [*args, *(f"--beam-arg={a}" for a in beam_args)])
    shutil.rmtree(out, ignore_errors=True)
    r = child.result
    return {
        "variant": variant,
        "rows": r["rows"],
        "seconds": r["seconds"],
        "events_per_s": r["rows"] / r["seconds"],
        "process_seconds": child.seconds,
        "peak_rss_mb": child.peak_rss_mb,
        "peak_tree_rss_mb": child.peak_tree_rss_mb,
        **{k: v for k, v in r.items() if k not in ("rows", "seconds")},
    }


def ratios_by_round(rows: list[dict]) -> dict[str, list[float]]:
    """mtlrec's events/s against each baseline's, paired within each round of each size; peak
    memory growth between consecutive sizes, paired by round as well."""
    by = {(r["events"], r["variant"], r["round"]): r for r in rows}
    sizes = sorted({r["events"] for r in rows})
    rounds = sorted({r["round"] for r in rows})
    pairs = [
        (f"{mine}_vs_{base}@{n}", (n, mine), (n, base), "events_per_s")
        for n in sizes
        for mine in ("mtlrec", "mtlrec_4f")
        for base in ("tft", "pyarrow")
    ]
    pairs += [
        (f"peak_tree_rss_growth_{v}_{small}_to_{large}", (large, v), (small, v), "peak_tree_rss_mb")
        for small, large in itertools.pairwise(sizes)
        for v in VARIANTS
    ]
    out: dict[str, list[float]] = {}
    for key, top, bottom, field in pairs:
        for k in rounds:
            a, b = by.get((*top, k)), by.get((*bottom, k))
            if a is not None and b is not None:
                out.setdefault(key, []).append(a[field] / b[field])
    return out


def ratios(rows: list[dict]) -> dict[str, float]:
    """The median over rounds of each paired ratio of `ratios_by_round`."""
    return {key: statistics.median(values) for key, values in ratios_by_round(rows).items()}


def summary(rows: list[dict]) -> list[dict]:
    """Per size and variant: the median over rounds of its figures, and its events/s range."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["events"], r["variant"]), []).append(r)
    out = []
    for (events, variant), runs in groups.items():
        rates = [r["events_per_s"] for r in runs]
        out.append(
            {
                "events": events,
                "variant": variant,
                "rounds": len(runs),
                "rows": runs[0]["rows"],
                **{f: statistics.median(r[f] for r in runs) for f in _MEDIAN_FIELDS},
                "events_per_s_min": min(rates),
                "events_per_s_max": max(rates),
            }
        )
    return out


def _rotated(variants: Sequence[str], k: int) -> list[str]:
    """The variants in round k's order: each round starts one variant later, so no variant
    always runs first or right after the same one."""
    shift = k % len(variants)
    return [*variants[shift:], *variants[:shift]]


def run(
    sizes: list[int],
    work: pathlib.Path,
    beam_args: tuple[str, ...],
    variants: Sequence[str] = tuple(VARIANTS),
    rounds: int = DEFAULT_ROUNDS,
) -> dict:
    rows = []
    for n in sizes:
        raw_dir = work / f"data-{n}"
        truth = generate_events(n, raw_dir)
        for k in range(rounds):
            for variant in _rotated(variants, k):
                print(
                    f"preprocess bench: {variant} on {n:,} events (round {k + 1}/{rounds}) ...",
                    file=sys.stderr,
                    flush=True,
                )
                row = measure(variant, raw_dir, work, beam_args)
                rows.append(
                    {"events": n, "round": k, "events_read": truth["counts"]["events_read"], **row}
                )
    return {
        "beam_args": list(beam_args),
        "rounds": rounds,
        "rows": rows,
        "summary": summary(rows),
        "ratios": ratios(rows),
        "ratios_by_round": ratios_by_round(rows),
    }


def table(result: dict) -> str:
    columns = [
        "events",
        "variant",
        "rows",
        "seconds",
        "events/s",
        "events/s min-max",
        "peak RSS MB",
        "tree RSS MB",
    ]
    body = [
        [
            r["events"],
            r["variant"],
            r["rows"],
            r["seconds"],
            r["events_per_s"],
            f"{fmt(r['events_per_s_min'])}-{fmt(r['events_per_s_max'])}",
            r["peak_rss_mb"],
            r["peak_tree_rss_mb"],
        ]
        for r in result["summary"]
    ]
    ratio_rows = [
        [key, value, " ".join(fmt(v) for v in result["ratios_by_round"][key])]
        for key, value in result["ratios"].items()
    ]
    rounds = result["rounds"]
    return "\n\n".join(
        [
            format_table(
                f"Preprocessing throughput and peak memory (median of {rounds} rounds)",
                columns,
                body,
            ),
            format_table(
                "Ratios, paired within each round (median, then each round)",
                ["ratio", "median", "rounds"],
                ratio_rows,
            ),
        ]
    )


def _child(args: argparse.Namespace) -> int:
    result = VARIANTS[args.variant](pathlib.Path(args.data), pathlib.Path(args.out), args.beam_arg)
    emit_child_result(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.preprocess", description=__doc__)
    parser.add_argument(
        "--events",
        type=int,
        nargs="+",
        default=list(DEFAULT_EVENTS),
        help=f"sizes to run, in events (default: {', '.join(f'{n:,}' for n in DEFAULT_EVENTS)})",
    )
    parser.add_argument("--large", action="store_true", help=f"also run {LARGE_EVENTS:,} events")
    parser.add_argument("--workdir", help="keep generated data here (default: a temp dir)")
    parser.add_argument(
        "--beam-arg", action="append", help="Beam option for every variant's job (repeatable)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"times every variant runs at every size (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="jobs to run"
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.beam_arg = tuple(args.beam_arg or BEAM_ARGS)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.variant:
        return _child(args)
    sizes = sorted({*args.events, *([LARGE_EVENTS] if args.large else [])})
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        work = pathlib.Path(args.workdir or tmp)
        result = run(sizes, work, args.beam_arg, args.variants, args.rounds)
    print(table(result))
    print(f"\nwrote {write_results('preprocess', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
