"""MovieLens 100K quality through the product's own path, next to the TFRS tutorial's numbers.

`mtlrec import movielens` → `mtlrec run` with the `movielens` preset (presets/movielens.yaml) (retrieval +
rating regression, side features), on two splits:
- random: the TFRS tutorial's protocol (random 80 000 / 20 000 ratings, seed 42; numpy's
  permutation, so not the tutorial's exact rows), with a random tenth of the 80 000 as the
  validation split. mtlrec splits by time only, so the bench moves the validation ratings a
  whole number of weeks past the last rating and the 20 000 test ratings twice as far (hour
  and weekday are unchanged) and sets `data.split_ts` between them;
- time: the product's default (the latest 20 % of the ratings by time are evaluated).
Reported: the TFRS top-100 accuracy (FactorizedTopK over the whole catalogue per rating:
the train step's eval `recall@100`), metrics.json's retrieval recall@100 and rating RMSE,
and the product's single-task and popularity baselines, beside the tutorial's published rows.
Skips (exit 0) when the MovieLens files are absent.

    python -m bench.movielens [--src ../shared/data/ml-100k] [--splits random time]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from bench.common import format_table, write_results

DEFAULT_SRC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
WEEK_MS = 7 * 86_400_000
TRAIN_ROWS, SPLIT_SEED = 80_000, 42
# TFRS multitask tutorial (recommenders/examples/multitask), published results.
TUTORIAL = {
    "joint": {"top100": 0.235, "rmse": 1.110},
    "rating-only": {"top100": 0.060, "rmse": 1.113},
    "retrieval-only": {"top100": 0.233, "rmse": None},
}
IN_PROCESS_BEAM = ["--runner=FnApiRunner"]


def mtlrec(*args: str) -> None:
    """Runs the mtlrec CLI (`python -m mtlrec`); a failure raises with its last lines."""
    done = subprocess.run(
        [sys.executable, "-m", "mtlrec", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"mtlrec {' '.join(args)} exited {done.returncode}:\n{tail}")


def random_split(
    raw: pathlib.Path,
    train_rows: int = TRAIN_ROWS,
    seed: int = SPLIT_SEED,
    validation_fraction: float = 0.1,
) -> int:
    """Makes the time splits equal random ones: returns split_ts; rewrites the interactions.

    A random `train_rows` are the training span, the rest the test split; of the training
    span a random `validation_fraction` is the validation split (the latest rows of the
    span by time, as mtlrec carves it). Validation rows move forward by whole weeks past the
    last rating, test rows twice as far, so hour and weekday features stay what they were.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = raw / "interactions" / "part-00000.parquet"
    table = pq.read_table(path)
    if table.num_rows <= train_rows:
        raise ValueError(f"{path}: {table.num_rows} ratings, need more than {train_rows}")
    order = np.random.default_rng(seed).permutation(table.num_rows)
    validation_rows = int(train_rows * validation_fraction)
    shift = np.zeros(table.num_rows, dtype=np.int64)
    shift[order[train_rows - validation_rows : train_rows]] = 1
    shift[order[train_rows:]] = 2
    ts = table.column("ts").to_numpy()
    weeks = (ts.max() - ts.min()) // WEEK_MS + 1
    moved = ts + shift * weeks * WEEK_MS
    table = table.set_column(table.schema.get_field_index("ts"), "ts", pa.array(moved, pa.int64()))
    pq.write_table(table, path)
    return int(ts.max() + weeks * WEEK_MS + 1)


def config_document(raw: pathlib.Path, workdir: pathlib.Path, split_ts: int | None) -> dict:
    from mtlrec.config import preset_document

    document = preset_document("movielens")
    document["data"] = {**document["data"], "raw_dir": str(raw), "split_ts": split_ts}
    document["runner"] = {"workdir": str(workdir), "beam_args": IN_PROCESS_BEAM}
    return document


def run_split(
    src: pathlib.Path, split: str, work: pathlib.Path, overrides: list[str] | None = None
) -> dict:
    """Import, split, `mtlrec run` (with `--set` overrides); the run's quality figures."""
    import yaml

    raw, workdir = work / split / "raw", work / split / "work"
    mtlrec("import", "movielens", "--src", str(src), "--out", str(raw))
    split_ts = random_split(raw) if split == "random" else None
    document = config_document(raw, workdir, split_ts)
    if split == "random":
        # A shuffled timeline has no past: a moved test rating's "last ratings" would be
        # other moved test ratings. History off (0.517 / 0.910 against 0.479 / 0.924 on).
        document["features"] = {**document.get("features", {}), "history_length": 0}
    config = work / split / "config.yaml"
    config.write_text(yaml.safe_dump(document))
    mtlrec("run", "--config", str(config), *(f"--set={o}" for o in overrides or ()))
    manifest = json.loads((workdir / "manifest.json").read_text())
    summary_path = workdir / "runs" / manifest["run_id"] / "train" / "summary.json"
    summary = json.loads(summary_path.read_text())
    metrics = manifest["metrics"]
    single, popular = metrics["baselines"]["single_task"], metrics["baselines"]["popularity"]
    return {
        "split": split,
        "train_examples": manifest["counts"]["train_examples"],
        "eval_examples": manifest["counts"]["eval_examples"],
        "overrides": list(overrides or ()),
        "top100_accuracy": summary["eval"]["retrieval"]["recall@100"],
        "validation_rmse": summary["eval"]["rating"]["rmse"],
        "recall@100": metrics["retrieval"]["recall@100"],
        "rmse": metrics["rating"]["rmse"],
        "single_task_rmse": single["rating"]["rmse"],
        "single_task_recall@100": single["retrieval"]["recall@100"],
        "popularity_rmse": popular["rating"]["rmse"],
        "popularity_recall@100": popular["retrieval"]["recall@100"],
        "seconds": {k: v["seconds"] for k, v in manifest["steps"].items()},
    }


def table(result: dict) -> str:
    rows = [
        [f"TFRS tutorial {name}", "random", v["top100"], None, None, v["rmse"]]
        for name, v in TUTORIAL.items()
    ]
    for r in result["runs"]:
        rows.append(
            [
                "mtlrec joint",
                r["split"],
                r["top100_accuracy"],
                r["recall@100"],
                r.get("validation_rmse"),
                r["rmse"],
            ]
        )
        rows.append(
            [
                "mtlrec single-task",
                r["split"],
                None,
                r["single_task_recall@100"],
                None,
                r["single_task_rmse"],
            ]
        )
        rows.append(
            ["popularity", r["split"], None, r["popularity_recall@100"], None, r["popularity_rmse"]]
        )
    columns = [
        "model",
        "split",
        "top-100 accuracy (validation)",
        "recall@100 (test)",
        "RMSE (validation)",
        "RMSE (test)",
    ]
    return format_table("MovieLens 100K: retrieval + rating", columns, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.movielens", description=__doc__)
    parser.add_argument("--src", type=pathlib.Path, default=DEFAULT_SRC)
    parser.add_argument(
        "--splits", nargs="+", choices=("random", "time"), default=["random", "time"]
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a configuration override for the runs (repeatable), as mtlrec run --set takes",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.src / "u.data").exists():
        print(f"MovieLens 100K not found at {args.src}: skipped (pass --src DIR)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-movielens-") as tmp:
        runs = []
        for split in args.splits:
            print(f"movielens bench: {split} split ...", file=sys.stderr, flush=True)
            runs.append(run_split(args.src, split, pathlib.Path(tmp), args.overrides))
    result = {"src": str(args.src), "tutorial": TUTORIAL, "runs": runs}
    print(table(result))
    print(f"\nwrote {write_results('movielens', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
