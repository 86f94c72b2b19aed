"""Preprocessing throughput (events/s) and peak memory: mtlrec vs bare tf.Transform vs pyarrow.

For each size, synthetic logs come from `pipeline.generate.generate`; then each variant of
`bench.preprocess_variants` runs alone in a child process (its peak memory is its own):
the full mtlrec validate + preprocess job, bare tf.Transform on the Arrow path, and a plain
pyarrow read + tf.Example + TFRecord write. Ratios are against the baselines of the same
size in the same run.

    python -m bench.preprocess [--events 100000 1000000] [--large]   # --large adds 5 M
    python -m bench.preprocess --events 1000000 5000000 --variants mtlrec tft   # memory growth
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Sequence

from bench.common import emit_child_result, format_table, run_child, write_results
from bench.preprocess_variants import VARIANTS
from pipeline.config import RunnerConfig

DEFAULT_EVENTS = (100_000, 1_000_000)
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
    from pipeline.generate import generate

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


def ratios(rows: list[dict]) -> dict:
    """mtlrec's events/s against each baseline's, per size; memory growth between sizes."""
    by = {(r["events"], r["variant"]): r for r in rows}
    sizes = sorted({r["events"] for r in rows})
    out: dict = {}
    for n in sizes:
        for mine in ("mtlrec", "mtlrec_4f"):
            if (n, mine) not in by:
                continue
            for base in ("tft", "pyarrow"):
                if (n, base) in by:
                    out[f"{mine}_vs_{base}@{n}"] = (
                        by[(n, mine)]["events_per_s"] / by[(n, base)]["events_per_s"]
                    )
    for small, large in itertools.pairwise(sizes):
        for variant in VARIANTS:
            if (small, variant) in by and (large, variant) in by:
                out[f"peak_tree_rss_growth_{variant}_{small}_to_{large}"] = (
                    by[(large, variant)]["peak_tree_rss_mb"]
                    / by[(small, variant)]["peak_tree_rss_mb"]
                )
    return out


def run(
    sizes: list[int],
    work: pathlib.Path,
    beam_args: tuple[str, ...],
    variants: Sequence[str] = tuple(VARIANTS),
) -> dict:
    rows = []
    for n in sizes:
        raw_dir = work / f"data-{n}"
        truth = generate_events(n, raw_dir)
        for variant in variants:
            print(f"preprocess bench: {variant} on {n:,} events ...", file=sys.stderr, flush=True)
            row = measure(variant, raw_dir, work, beam_args)
            rows.append({"events": n, "events_read": truth["counts"]["events_read"], **row})
    return {"beam_args": list(beam_args), "rows": rows, "ratios": ratios(rows)}


def table(result: dict) -> str:
    columns = ["events", "variant", "rows", "seconds", "events/s", "peak RSS MB", "tree RSS MB"]
    body = [
        [
            r["events"],
            r["variant"],
            r["rows"],
            r["seconds"],
            r["events_per_s"],
            r["peak_rss_mb"],
            r["peak_tree_rss_mb"],
        ]
        for r in result["rows"]
    ]
    ratio_rows = [[k, v] for k, v in result["ratios"].items()]
    return "\n\n".join(
        [
            format_table("Preprocessing throughput and peak memory", columns, body),
            format_table("Ratios (same run)", ["ratio", "value"], ratio_rows),
        ]
    )


def _child(args: argparse.Namespace) -> int:
    result = VARIANTS[args.variant](pathlib.Path(args.data), pathlib.Path(args.out), args.beam_arg)
    emit_child_result(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.preprocess", description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=list(DEFAULT_EVENTS))
    parser.add_argument("--large", action="store_true", help=f"also run {LARGE_EVENTS:,} events")
    parser.add_argument("--workdir", help="keep generated data here (default: a temp dir)")
    parser.add_argument(
        "--beam-arg", action="append", help="Beam option for every variant's job (repeatable)"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="jobs to run"
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.beam_arg = tuple(args.beam_arg or BEAM_ARGS)
    if args.variant:
        return _child(args)
    sizes = sorted({*args.events, *([LARGE_EVENTS] if args.large else [])})
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        work = pathlib.Path(args.workdir or tmp)
        result = run(sizes, work, args.beam_arg, args.variants)
    print(table(result))
    print(f"\nwrote {write_results('preprocess', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
