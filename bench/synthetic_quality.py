"""Click (and purchase) AUC on synthetic data against the oracle that knows the true probability.

One synthetic run (`mtlrec.datasets.synthetic.generate` → the product's validate + preprocess); then for each
(sharing, training mode, loss weighting) the product's `mtlrec.models.train.train` fits the default
multi-task model in its own child process, and the kept model scores the evaluation split.
The oracle AUC (`truth.json`: AUC of the true click probability on the same impressions) is
the ceiling; "share of oracle lift" = (AUC − 0.5) / (oracle − 0.5).

    python -m bench.synthetic_quality [--size tiny|default] [--grid main|full]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import pathlib
import sys
import tempfile

from bench.common import emit_child_result, format_table, run_child, write_results
from bench.synthetic_run import prepare

SHARINGS = ("shared_bottom", "mmoe", "ple")
MODES = ("joint", "alternating")
WEIGHTINGS = ("fixed", "uncertainty")


@dataclasses.dataclass(frozen=True)
class Size:
    users: int
    days: int
    epochs: int
    steps_per_epoch: int


SIZES = {
    "tiny": Size(users=120, days=4, epochs=1, steps_per_epoch=3),
    "default": Size(users=1000, days=14, epochs=1, steps_per_epoch=190),
}


GRIDS = ("main", "full", "smoke")


def grid(name: str) -> list[tuple[str, str, str]]:
    """full: every combination; main: each sharing joint+fixed, then one factor changed;
    smoke: two configurations that between them touch every factor (a quick check)."""
    if name == "full":
        return list(itertools.product(SHARINGS, MODES, WEIGHTINGS))
    if name == "smoke":
        return [("shared_bottom", "joint", "fixed"), ("ple", "alternating", "uncertainty")]
    if name != "main":
        raise ValueError(f"grid must be one of {GRIDS}, got {name!r}")
    base = [(s, "joint", "fixed") for s in SHARINGS]
    return [
        *base,
        *[(s, "alternating", "fixed") for s in SHARINGS],
        *[(s, "joint", "uncertainty") for s in SHARINGS],
    ]


def fit_and_score(preprocess: pathlib.Path, out: pathlib.Path, combo: str, size: Size) -> dict:
    """Child side: train one configuration with the product, then AUC on the eval split."""
    import numpy as np

    from mtlrec.features.config import FeaturesConfig
    from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TrainingConfig
    from mtlrec.models.data import make_dataset
    from mtlrec.models.model import load_model
    from mtlrec.models.offline_metrics import auc
    from mtlrec.models.train import train

    sharing, mode, weighting = combo.split(",")
    training = TrainingConfig(
        mode=mode,
        epochs=size.epochs,
        steps_per_epoch=size.steps_per_epoch,
        early_stopping_patience=None,
    )
    model_cfg = ModelConfig(sharing=sharing, weighting=weighting)
    summary = train(DEFAULT_TASKS, model_cfg, training, FeaturesConfig(), preprocess, out)
    tft_dir = preprocess / "transform_fn"
    model = load_model(out / "model", tft_dir)
    eval_data = make_dataset(
        preprocess / "eval-*.tfrecord.gz", tft_dir, 4096, shuffle=False, seed=0
    )
    scores: dict[str, list] = {"click": [], "purchase": [], "click_label": [], "purchase_label": []}
    for batch in eval_data:
        predictions = model.predict_tasks(batch)
        for task in ("click", "purchase"):
            scores[task].append(predictions[task].numpy())
            scores[f"{task}_label"].append(batch[task].numpy())
    joined = {k: np.concatenate(v) for k, v in scores.items()}
    return {
        "click_auc": float(auc(joined["click_label"], joined["click"])),
        "purchase_auc": float(auc(joined["purchase_label"], joined["purchase"])),
        "eval_rows": int(joined["click"].size),
        "train_examples_per_s": summary["examples_per_s"],
    }


def run(size_name: str, grid_name: str, data_dir: pathlib.Path, work: pathlib.Path) -> dict:
    size = SIZES[size_name]
    print("synthetic quality: generate + preprocess ...", file=sys.stderr, flush=True)
    preprocess, truth = prepare(data_dir, size.users, size.days)
    oracle = truth["oracle"]
    rows = []
    for sharing, mode, weighting in grid(grid_name):
        combo = f"{sharing},{mode},{weighting}"
        print(f"synthetic quality: {combo} ...", file=sys.stderr, flush=True)
        args = ["--combo", combo, "--size", size_name, "--preprocess-dir", str(preprocess)]
        child = run_child("bench.synthetic_quality", [*args, "--out", str(work / combo)])
        r = child.result
        rows.append(
            {
                "sharing": sharing,
                "mode": mode,
                "weighting": weighting,
                **r,
                "click_share_of_oracle_lift": (r["click_auc"] - 0.5)
                / (oracle["click_auc_eval"] - 0.5),
                "seconds": child.seconds,
            }
        )
    return {"size": dataclasses.asdict(size), "grid": grid_name, "oracle": oracle, "rows": rows}


def table(result: dict) -> str:
    oracle = result["oracle"]
    columns = [
        "sharing",
        "mode",
        "weighting",
        "click AUC",
        "share of oracle lift",
        "purchase AUC",
        "seconds",
    ]
    body = [
        [
            r["sharing"],
            r["mode"],
            r["weighting"],
            r["click_auc"],
            r["click_share_of_oracle_lift"],
            r["purchase_auc"],
            r["seconds"],
        ]
        for r in result["rows"]
    ]
    title = (
        f"Synthetic quality vs oracle (click AUC {oracle['click_auc_eval']:.4f}, "
        f"purchase AUC {oracle['purchase_auc_eval']:.4f})"
    )
    return format_table(title, columns, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic_quality", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--grid", choices=GRIDS, default="main")
    parser.add_argument("--workdir", help="keep (and reuse) the synthetic run here")
    parser.add_argument("--combo", help=argparse.SUPPRESS)
    parser.add_argument("--preprocess-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.combo:
        result = fit_and_score(
            pathlib.Path(args.preprocess_dir), pathlib.Path(args.out), args.combo, SIZES[args.size]
        )
        emit_child_result(result)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        result = run(args.size, args.grid, pathlib.Path(args.workdir or tmp), pathlib.Path(tmp))
    print(table(result))
    print(f"\nwrote {write_results('synthetic_quality', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
