"""Training throughput (examples/s) and input wait: mtlrec's model vs a plain TFRS model.

On one preprocessed run (synthetic logs → the product's validate + preprocess), each
variant runs alone in a child process:
- `mtlrec`: the default multi-task model (mtlrec.models.model.build_model, DEFAULT_TASKS) stepped by
  the product's TrainStep.run_steps (`training.steps_per_execution` steps per compiled call)
  on the product's input (mtlrec.models.memory_input: the split parsed once into memory when it
  fits, as `mtlrec train` does: row indices, gathered in the compiled step; the parse is
  `load_seconds`, outside the timed steps);
- `mtlrec_two_tasks`: the same with only the plain model's tasks (retrieval, click);
- `plain`: bench.train_plain, a plain TFRS two-tower + click head of the same embedding size,
  stepped from Python one batch per call (a TFRS custom training loop);
- `plain_fused`: the same plain model with the product's steps per call: the strict baseline;
- `plain_cached`: the plain model stepped one batch per call on batches parsed once and
  cached in memory (`.batch().cache()`, as the TFRS tutorials feed `model.fit`);
- `mtlrec_train`: the product's whole `mtlrec.models.train.train` for one epoch of the same steps
  (its own examples/s: training loop only, checkpoints included, evaluation excluded).
Input wait is measured, not guessed: each of the first five also runs the same steps on
batches already in memory (features, for `mtlrec` too: its gathers count as input), and the
share of time that saves is the time spent waiting for input. Variants run interleaved for
several rounds; each reports its best round.

    python -m bench.train [--size tiny|default] [--preprocess-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import statistics
import sys
import tempfile
import time

from bench.common import emit_child_result, format_table, run_child, write_results
from bench.synthetic_run import prepare


@dataclasses.dataclass(frozen=True)
class Size:
    users: int
    days: int
    steps: int
    warmup: int = 5
    rounds: int = 3
    slices: int = 12


SIZES = {
    "tiny": Size(users=120, days=4, steps=12, warmup=2, rounds=1, slices=1),
    "default": Size(users=1000, days=14, steps=2400),
}


# Batches held in memory for the no-input reference run: enough to not repeat within a step.
IN_MEMORY_BATCHES = 50


def _runner(call, dataset, steps_per_call: int):
    """`run(steps)`: the next `steps` steps on one iterator of `dataset`, `steps_per_call` a call."""
    batches = iter(dataset)

    def run(steps: int) -> None:
        while steps > 0:
            steps -= call(batches, min(steps_per_call, steps))

    return run


def measure(
    call,
    data,
    *,
    steps: int,
    warmup: int,
    batch_size: int,
    steps_per_call: int,
    slices: int = 1,
    reference=None,
) -> dict:
    """Examples/s on `data`, and the input wait: the share of that time the same steps
    save when their batches are already in memory.

    `call(batches, n)` runs up to `n` steps on the iterator `batches` and returns how many.
    `reference`, a (call, dataset) pair, gives the features of `data`'s batches and the call
    that steps on them, when `call` makes the features itself (held splits: row indices
    gathered in the step); by default it is (`call`, `data`).
    Both runs first take `warmup` steps (tracing, first fills of tf.data buffers), then
    alternate in `slices` slices of the `steps`, so both see the same machine: a shared VM's
    speed drifts by more than the effect measured. Between slices the input of `data` reads
    ahead by at most its buffers (a few batches), little against slices of 200 steps, and
    nothing of what held splits do in the step.
    """
    reference_call, features = reference or (call, data)
    in_memory = features.take(IN_MEMORY_BATCHES).cache()
    for _ in in_memory:  # fill the cache before the clock
        pass
    runs = {
        "data": _runner(call, data, steps_per_call),
        "in_memory": _runner(reference_call, in_memory.repeat(), steps_per_call),
    }
    for run in runs.values():
        run(warmup)
    seconds = dict.fromkeys(runs, 0.0)
    for i in range(slices):
        slice_steps = steps * (i + 1) // slices - steps * i // slices
        for name, run in runs.items():
            start = time.perf_counter()
            run(slice_steps)
            seconds[name] += time.perf_counter() - start
    rows = steps * batch_size
    return {
        "rows": rows,
        "seconds": seconds["data"],
        "examples_per_s": rows / seconds["data"],
        "input_wait_fraction": max(0.0, 1.0 - seconds["in_memory"] / seconds["data"]),
        "in_memory_examples_per_s": rows / seconds["in_memory"],
        "steps_per_execution": steps_per_call,
    }


def _product_parts(preprocess_dir: pathlib.Path):
    from mtlrec.features.config import FeaturesConfig
    from mtlrec.features.declarations import feature_set
    from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TrainingConfig
    from mtlrec.models.data import vocab_sizes_from_tft

    features, tasks = FeaturesConfig(), DEFAULT_TASKS
    fs = feature_set(features, tuple(t.label for t in tasks if t.label is not None))
    vocab = vocab_sizes_from_tft(preprocess_dir / "transform_fn", fs)
    return features, fs, tasks, ModelConfig(), TrainingConfig(), vocab


def _step_product_model(
    preprocess_dir: pathlib.Path, size: Size, task_names: tuple[str, ...] | None
) -> dict:
    import tensorflow as tf

    from mtlrec.models.memory_input import open_split
    from mtlrec.models.model import build_model
    from mtlrec.models.optim import TrainStep, make_optimizer

    features, fs, tasks, model_cfg, cfg, vocab = _product_parts(preprocess_dir)
    tasks = tuple(t for t in tasks if task_names is None or t.name in task_names)
    names = tuple(t.name for t in tasks)
    tf.keras.utils.set_random_seed(cfg.seed)
    strategy = tf.distribute.get_strategy()
    model = build_model(fs, tasks, model_cfg, vocab, serving_position=features.serving_position)
    optimizer = make_optimizer(cfg, size.steps + size.warmup)
    optimizer.build(model.trainable_variables)
    start = time.perf_counter()
    split = open_split(
        preprocess_dir / "train-*.tfrecord.gz",
        preprocess_dir / "transform_fn",
        passthrough=False,
        max_bytes=cfg.input_memory_mb * 2**20,
    )
    load_seconds = time.perf_counter() - start

    def stepper(prepare):
        step = TrainStep(model, optimizer, strategy, l2_embedding=cfg.l2_embedding, prepare=prepare)
        return lambda batches, n: step.run_steps(batches, n).steps

    batches = {"batch_size": cfg.batch_size, "seed": cfg.seed, "repeat": True}
    result = measure(
        stepper(split.prepare),
        split.train_batches(**batches, shuffle_buffer=cfg.shuffle_buffer),
        steps=size.steps,
        warmup=size.warmup,
        batch_size=cfg.batch_size,
        steps_per_call=cfg.steps_per_execution,
        slices=size.slices,
        reference=(stepper(None), split.batches(**batches, shuffle=True)),
    )
    return {
        **result,
        "embedding_dim": model_cfg.embedding_dim,
        "tasks": list(names),
        "input": split.source,
        "load_seconds": load_seconds,
    }


def run_mtlrec(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    return _step_product_model(preprocess_dir, size, None)


def run_mtlrec_two_tasks(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    """The product's model with only the plain model's tasks: what the extra tasks cost."""
    return _step_product_model(preprocess_dir, size, ("retrieval", "click"))


def _plain(
    preprocess_dir: pathlib.Path, size: Size, steps_per_call: int, *, cached: bool = False
) -> dict:
    import tensorflow as tf

    from bench.train_plain import PlainTwoTaskModel, plain_dataset, plain_step, plain_steps

    features, _, _, model_cfg, cfg, vocab = _product_parts(preprocess_dir)
    tf.keras.utils.set_random_seed(cfg.seed)
    oov = features.id_oov_buckets
    model = PlainTwoTaskModel(
        vocab["user_id"] + oov, vocab["item_id"] + oov, model_cfg.embedding_dim
    )
    data = plain_dataset(
        preprocess_dir / "train-*.tfrecord.gz",
        cfg.batch_size,
        seed=cfg.seed,
        shuffle_buffer=cfg.shuffle_buffer,
        cached=cached,
    )
    load_seconds = None  # streamed: every step parses its batch
    if cached:
        start = time.perf_counter()
        for _ in data:  # the parse, once: fills the cache before the clock, as for mtlrec
            pass
        data = data.repeat().prefetch(tf.data.AUTOTUNE)
        load_seconds = time.perf_counter() - start
    step = plain_step(model, cfg.learning_rate)
    many = plain_steps(step)

    def call(batches, n: int) -> int:
        if steps_per_call == 1:  # a Python loop: the batch comes through Python
            float(step(next(batches)))
        else:
            float(many(batches, tf.constant(n)))
        return n

    result = measure(
        call,
        data,
        steps=size.steps,
        warmup=size.warmup,
        batch_size=cfg.batch_size,
        steps_per_call=steps_per_call,
        slices=size.slices,
    )
    return {
        **result,
        "embedding_dim": model_cfg.embedding_dim,
        "tasks": ["retrieval", "click"],
        "input": "memory" if cached else "stream",
        "load_seconds": load_seconds,
    }


def run_plain(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    """The plain model stepped from Python, one call per batch (a TFRS custom loop)."""
    return _plain(preprocess_dir, size, 1)


def run_plain_fused(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    """The plain model with as many steps per call as the product: the strict baseline."""
    from mtlrec.models.config import TrainingConfig

    return _plain(preprocess_dir, size, TrainingConfig().steps_per_execution)


def run_plain_cached(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    """The plain model on batches parsed once and cached, as the TFRS tutorials feed it."""
    return _plain(preprocess_dir, size, 1, cached=True)


def run_mtlrec_train(preprocess_dir: pathlib.Path, size: Size, out: pathlib.Path) -> dict:
    from mtlrec.models.train import train

    features, _, tasks, model_cfg, cfg, _ = _product_parts(preprocess_dir)
    one_epoch = cfg.model_copy(
        update={"epochs": 1, "steps_per_epoch": size.steps, "early_stopping_patience": None}
    )
    start = time.perf_counter()
    summary = train(tasks, model_cfg, one_epoch, features, preprocess_dir, out)
    return {
        "rows": size.steps * cfg.batch_size,
        "seconds": time.perf_counter() - start,
        "examples_per_s": summary["examples_per_s"],
        "input_wait_fraction": None,
    }


VARIANTS = {
    "mtlrec": run_mtlrec,
    "mtlrec_two_tasks": run_mtlrec_two_tasks,
    "plain": run_plain,
    "plain_fused": run_plain_fused,
    "plain_cached": run_plain_cached,
    "mtlrec_train": run_mtlrec_train,
}


def run(preprocess_dir: pathlib.Path, size_name: str, work: pathlib.Path) -> dict:
    """Every variant `rounds` times, interleaved; each variant's best round is its row.

    The best of several rounds is the least disturbed by other work on the machine.
    """
    size = SIZES[size_name]
    samples: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_ in range(size.rounds):
        for variant in VARIANTS:
            print(f"train bench: {variant} (round {round_ + 1}) ...", file=sys.stderr, flush=True)
            args = ["--variant", variant, "--size", size_name]
            out = work / f"{variant}-{round_}"  # a fresh step dir: train() resumes from one
            child = run_child(
                "bench.train",
                [*args, "--preprocess-dir", str(preprocess_dir), "--out", str(out)],
            )
            samples[variant].append({**child.result, "peak_rss_mb": child.peak_rss_mb})
    rows = []
    for variant, runs in samples.items():
        best = max(runs, key=lambda r: r["examples_per_s"])
        rounds = [r["examples_per_s"] for r in runs]
        waits = [r["input_wait_fraction"] for r in runs if r["input_wait_fraction"] is not None]
        rows.append(
            {
                "variant": variant,
                **best,
                "rounds": rounds,
                "median": statistics.median(rounds),
                "input_wait_median": statistics.median(waits) if waits else None,
            }
        )
    by = {r["variant"]: r for r in rows}
    ratios = {}
    for variant in ("mtlrec", "mtlrec_two_tasks", "mtlrec_train"):
        for base in ("plain", "plain_fused", "plain_cached"):
            mine, theirs = by[variant], by[base]
            ratios[f"{variant}_vs_{base}"] = mine["examples_per_s"] / theirs["examples_per_s"]
            ratios[f"{variant}_vs_{base}_median"] = mine["median"] / theirs["median"]
    return {"size": dataclasses.asdict(size), "rows": rows, "ratios": ratios}


def table(result: dict) -> str:
    columns = [
        "variant",
        "examples",
        "seconds",
        "examples/s (best)",
        "median",
        "input wait",
        "median wait",
        "input",
        "load s",
        "peak RSS MB",
    ]
    body = [
        [
            r["variant"],
            r["rows"],
            r["seconds"],
            r["examples_per_s"],
            r["median"],
            r["input_wait_fraction"],
            r["input_wait_median"],
            r.get("input"),
            r.get("load_seconds"),
            r["peak_rss_mb"],
        ]
        for r in result["rows"]
    ]
    return "\n\n".join(
        [
            format_table("Training throughput (one process)", columns, body),
            format_table("Ratios (same run)", ["ratio", "value"], list(result["ratios"].items())),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--preprocess-dir", help="a preprocess step directory to train on")
    parser.add_argument("--workdir", help="keep (and reuse) the synthetic run here")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        size = SIZES[args.size]
        fn = VARIANTS[args.variant]
        emit_child_result(fn(pathlib.Path(args.preprocess_dir), size, pathlib.Path(args.out)))
        return 0
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = pathlib.Path(args.workdir or tmp)
        if args.preprocess_dir:
            preprocess_dir = pathlib.Path(args.preprocess_dir)
        else:
            preprocess_dir, _ = prepare(work, size.users, size.days)
        result = run(preprocess_dir, args.size, pathlib.Path(tmp))
    print(table(result))
    print(f"\nwrote {write_results('train', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
