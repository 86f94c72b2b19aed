"""The MMoE paper's synthetic experiment (Ma et al., KDD 2018, §3) on the project's own blocks.

Two regression tasks whose correlation is set by p: orthonormal u1, u2, w1 = c·u1,
w2 = c·(p·u1 + sqrt(1 − p²)·u2), y_i = w_iᵀx + Σ_k sin(α_k·w_iᵀx + β_k) + ε. Shared-bottom
and MMoE (mtlrec.models.sharing.SharedBottom / MMoE with mtlrec.models.heads.TaskHead towers, sized as in
the paper: 8 single-layer experts of 16 units, towers of 8 units, a shared bottom of about
the same parameter count) are trained on each p over several seeds; the paper found
MMoE's advantage grows as the tasks become less correlated.

    python -m bench.mmoe_paper [--size tiny|default|large]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np

from bench.common import format_table, mean_std, write_results

TASKS = ("task1", "task2")
MODELS = ("shared_bottom", "mmoe")


@dataclasses.dataclass(frozen=True)
class Size:
    correlations: tuple[float, ...]
    seeds: int
    n_train: int
    n_test: int
    epochs: int
    batch_size: int = 256


SIZES = {
    "tiny": Size(correlations=(0.5, 1.0), seeds=1, n_train=1024, n_test=512, epochs=2),
    "default": Size(correlations=(0.5, 0.9, 1.0), seeds=3, n_train=20000, n_test=4000, epochs=30),
    "large": Size(correlations=(0.5, 0.9, 1.0), seeds=10, n_train=50000, n_test=10000, epochs=40),
}

# Paper set-up: input dimension 100, m = 10 sine terms, c = 1, noise N(0, 0.01) (variance).
DIM, SINES, SCALE, NOISE_STD = 100, 10, 1.0, 0.1
NUM_EXPERTS, EXPERT_UNITS, TOWER_UNITS = 8, 16, 8
SHAPE_SEED = 2018


def task_weights(
    p: float, rng: np.random.Generator, *, dim: int = DIM, c: float = SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """w1 = c·u1 and w2 = c·(p·u1 + sqrt(1 − p²)·u2) from random orthonormal u1, u2."""
    if not -1.0 <= p <= 1.0:
        raise ValueError(f"correlation p must be within [-1, 1], got {p}")
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    u1, u2 = q[:, 0], q[:, 1]
    return c * u1, c * (p * u1 + np.sqrt(1.0 - p * p) * u2)


def labels(
    x: np.ndarray, w: np.ndarray, alpha: np.ndarray, beta: np.ndarray, noise: np.ndarray
) -> np.ndarray:
    """y = wᵀx + Σ_k sin(α_k·wᵀx + β_k) + noise, for rows x [N, d]."""
    wx = x @ w
    return wx + np.sin(np.outer(wx, alpha) + beta).sum(axis=1) + noise


def sine_shape() -> tuple[np.ndarray, np.ndarray]:
    """α_k, β_k ~ N(0, 1), drawn once: the paper's "given parameters" are fixed across runs."""
    rng = np.random.default_rng(SHAPE_SEED)
    return rng.standard_normal(SINES), rng.standard_normal(SINES)


def make_data(p: float, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """n rows x ~ N(0, I_100) and the two task labels, all drawn from `seed`."""
    rng = np.random.default_rng(seed)
    w1, w2 = task_weights(p, rng)
    alpha, beta = sine_shape()
    x = rng.standard_normal((n, DIM))
    ys = {
        task: labels(x, w, alpha, beta, rng.normal(0.0, NOISE_STD, n)).astype("float32")
        for task, w in zip(TASKS, (w1, w2), strict=True)
    }
    return x.astype("float32"), ys


def _shared_bottom_units() -> int:
    """Bottom width giving shared-bottom about MMoE's parameter count (the paper's rule)."""
    mmoe = NUM_EXPERTS * (DIM + 1) * EXPERT_UNITS + len(TASKS) * (DIM + 1) * NUM_EXPERTS
    towers_per_unit = len(TASKS) * TOWER_UNITS  # tower weights grow with the bottom width
    return round(mmoe / (DIM + 1 + towers_per_unit))


def build_model(kind: str):
    """Sharing block + one TaskHead per task, as a compiled Keras model with dict outputs."""
    import tensorflow as tf

    from mtlrec.models.heads import TaskHead
    from mtlrec.models.sharing import MMoE, SharedBottom

    if kind == "shared_bottom":
        sharing = SharedBottom(TASKS, (_shared_bottom_units(),))
    elif kind == "mmoe":
        sharing = MMoE(TASKS, NUM_EXPERTS, (EXPERT_UNITS,))
    else:
        raise ValueError(f"model kind must be one of {MODELS}, got {kind!r}")

    class TwoTaskRegressor(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.sharing = sharing
            self.heads = {t: TaskHead((TOWER_UNITS,), name=f"head_{t}") for t in TASKS}

        def call(self, x, training=False):
            reps = self.sharing(x, training=training)
            return {t: self.heads[t](reps[t], training=training) for t in TASKS}

    model = TwoTaskRegressor()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=dict.fromkeys(TASKS, "mse"))
    model(tf.zeros([1, DIM]))
    return model


def train_one(kind: str, p: float, seed: int, size: Size) -> dict:
    """Train one model on one (p, seed) data set; test MSE averaged over the two tasks."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    x, ys = make_data(p, size.n_train + size.n_test, seed)
    train_x, test_x = x[: size.n_train], x[size.n_train :]
    train_y = {t: y[: size.n_train] for t, y in ys.items()}
    test_y = {t: y[size.n_train :] for t, y in ys.items()}
    model = build_model(kind)
    start = time.perf_counter()
    history = model.fit(
        train_x, train_y, batch_size=size.batch_size, epochs=size.epochs, verbose=0, shuffle=True
    )
    seconds = time.perf_counter() - start
    scores = model.evaluate(test_x, test_y, batch_size=1024, verbose=0, return_dict=True)
    return {
        "model": kind,
        "p": p,
        "seed": seed,
        "test_mse": float(np.mean([scores[f"{t}_loss"] for t in TASKS])),
        "train_mse": float(history.history["loss"][-1]) / len(TASKS),
        "label_var": float(np.mean([y[size.n_train :].var() for y in ys.values()])),
        "params": int(model.count_params()),
        "train_seconds": seconds,
    }


def summarise(runs: list[dict], correlations: tuple[float, ...]) -> dict:
    """Mean ± std of test MSE per (model, p), MMoE's advantage per p and its trend."""
    cells = {}
    for kind in MODELS:
        for p in correlations:
            mean, std = mean_std(
                [r["test_mse"] for r in runs if r["model"] == kind and r["p"] == p]
            )
            cells[f"{kind}@{p}"] = {"mean": mean, "std": std}
    by_key = {(r["model"], r["p"], r["seed"]): r["test_mse"] for r in runs}
    advantage = {}
    for p in correlations:
        # Paired by seed: both models saw the same data set, which sets most of the variance.
        gaps = [
            by_key[("shared_bottom", p, seed)] - by_key[("mmoe", p, seed)]
            for (kind, q, seed) in by_key
            if kind == "mmoe" and q == p
        ]
        mean, std = mean_std(gaps)
        advantage[str(p)] = {"mean": mean, "std": std}
    ordered = [advantage[str(p)]["mean"] for p in sorted(correlations)]
    return {
        "test_mse": cells,
        "mmoe_advantage": advantage,
        "advantage_grows_as_p_falls": all(a >= b for a, b in itertools.pairwise(ordered)),
    }


def run(size: Size) -> dict:
    runs = [
        train_one(kind, p, seed, size)
        for p in size.correlations
        for seed in range(size.seeds)
        for kind in MODELS
    ]
    return {"size": dataclasses.asdict(size), "runs": runs, **summarise(runs, size.correlations)}


def table(result: dict) -> str:
    rows = []
    for p in result["size"]["correlations"]:
        sb, mm = (result["test_mse"][f"{k}@{p}"] for k in MODELS)
        rows.append(
            [
                p,
                f"{sb['mean']:.4f} ± {sb['std']:.4f}",
                f"{mm['mean']:.4f} ± {mm['std']:.4f}",
                "{mean:.4f} ± {std:.4f}".format(**result["mmoe_advantage"][str(p)]),
            ]
        )
    title = (
        f"MMoE paper synthetic experiment: test MSE over {result['size']['seeds']} seeds "
        f"(advantage grows as p falls: {result['advantage_grows_as_p_falls']})"
    )
    return format_table(title, ["p", "shared_bottom", "mmoe", "mmoe advantage (paired)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mmoe_paper", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--seeds", type=int, help="override the number of seeds of --size")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    if args.seeds:
        size = dataclasses.replace(size, seeds=args.seeds)
    result = run(size)
    print(table(result))
    print(f"\nwrote {write_results('mmoe_paper', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
