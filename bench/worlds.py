"""Quality on synthetic worlds the model was not tuned on, through the product's own path.

Each world is `mtlrec run` on `mtlrec generate` data with other knobs
(`data.generate.latent_dim`, `affinity`, `popularity_skew`, `position_decay`,
`task_correlation`, and a seed of its own). On the test split (the model selected on
validation), per world: click AUC against the oracle's (AUC of the true click probability,
`truth.json`), retrieval recall@100 against recommending the most clicked items, purchase AUC
on clicked impressions against the items' purchase rate, and dwell RMSE against the items'
mean dwell (the popularity baseline; a stronger bar than the training mean). The targets of
issue 22: click ≥ 0.97× oracle, recall@100 ≥ 1.1× popularity, purchase and dwell better than
popularity.

    python -m bench.worlds [--worlds default wide skewed flat] [--size default|tiny]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

from bench.common import format_table, write_results

WORLDS = {
    "default": {},  # the world the defaults were chosen on, for reference
    "wide": {
        "latent_dim": 32,
        "affinity": 1.5,
        "popularity_skew": 0.8,
        "task_correlation": 0.6,
        "seed": 21,
    },
    "skewed": {
        "latent_dim": 4,
        "affinity": 0.7,
        "popularity_skew": 1.4,
        "position_decay": 1.2,
        "task_correlation": 0.2,
        "seed": 22,
    },
    "flat": {
        "latent_dim": 16,
        "affinity": 2.0,
        "popularity_skew": 0.5,
        "position_decay": 0.3,
        "task_correlation": 0.9,
        "seed": 23,
    },
}
SIZES = {
    "default": {"users": 1000, "items": 500, "days": 14},
    "tiny": {"users": 120, "items": 60, "days": 4, "training.epochs": 1},
}
IN_PROCESS_BEAM = "--runner=FnApiRunner"


def run_world(name: str, size: str, work: pathlib.Path, overrides: list[str]) -> dict:
    """`mtlrec run` on the world's generated data; its test and validation figures."""
    knobs = {**{k: v for k, v in SIZES[size].items() if "." not in k}, **WORLDS[name]}
    sets = [f"data.generate.{k}={v}" for k, v in knobs.items()]
    sets += [f"{k}={v}" for k, v in SIZES[size].items() if "." in k]
    sets += ["evaluation.beat_popularity=false", *overrides]  # measured here, not gated
    workdir = work / name
    command = [sys.executable, "-m", "mtlrec", "run", "--workdir", str(workdir)]
    command += [a for s in sets for a in ("--set", s)] + ["--", IN_PROCESS_BEAM]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"world {name}: mtlrec run exited {done.returncode}:\n{tail}")
    truth = json.loads((workdir / "data" / "truth.json").read_text())
    manifest = json.loads((workdir / "manifest.json").read_text())
    m = manifest["metrics"]
    popular = m["baselines"]["popularity"]
    return {
        "world": name,
        "knobs": knobs,
        "overrides": overrides,
        "oracle_click_auc": truth["oracle"]["click_auc_eval"],
        "click_auc": m["click"]["auc"],
        # A tiny catalogue has no top 100: its validation recall stops at its size.
        "validation_click_auc": m["validation"]["click"].get("auc"),
        "validation_recall@100": m["validation"]["retrieval"].get("recall@100"),
        "validation_purchase_auc": m["validation"]["purchase"].get("auc"),
        "validation_dwell_rmse": m["validation"]["dwell"].get("rmse"),
        "recall@100": m["retrieval"]["recall@100"],
        "popularity_recall@100": popular["retrieval"]["recall@100"],
        "purchase_auc_on_clicks": m["purchase"]["auc_on_clicks"],
        "popularity_purchase_auc_on_clicks": popular["purchase"]["auc_on_clicks"],
        "dwell_rmse_s": m["dwell"]["rmse_s"],
        "popularity_dwell_rmse_s": popular["dwell"]["rmse_s"],
    }


def table(runs: list[dict]) -> str:
    rows = [
        [
            r["world"],
            r["click_auc"] / r["oracle_click_auc"],
            r["recall@100"] / r["popularity_recall@100"],
            r["purchase_auc_on_clicks"],
            r["popularity_purchase_auc_on_clicks"],
            r["dwell_rmse_s"],
            r["popularity_dwell_rmse_s"],
        ]
        for r in runs
    ]
    columns = [
        "world",
        "click AUC / oracle (≥0.97)",
        "recall@100 / popularity (≥1.1)",
        "purchase AUC on clicks",
        "popularity's",
        "dwell RMSE s",
        "popularity's",
    ]
    return format_table("Synthetic worlds, test split (selected on validation)", columns, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worlds", description=__doc__)
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a configuration override for every run (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-worlds-") as tmp:
        runs = []
        for name in args.worlds:
            print(f"worlds bench: {name} ...", file=sys.stderr, flush=True)
            runs.append(run_world(name, args.size, pathlib.Path(tmp), args.overrides))
    result = {"size": args.size, "runs": runs}
    print(table(runs))
    print(f"\nwrote {write_results('worlds', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
