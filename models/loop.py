"""The training loop: steps, periodic checkpoints, per-epoch evaluation, early stopping.

Independent of where the data comes from (`train` feeds it the TFRecords; tests feed it
in-memory datasets). One epoch is `steps_per_epoch` batches of `train_data(epoch)`, a
deterministic dataset, so a resumed run skips to the checkpointed batch and goes on.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Callable

import tensorflow as tf

from mtlrec.models.checkpoint import TrainingState
from mtlrec.models.config import TaskConfig, TrainingConfig
from mtlrec.models.history import History
from mtlrec.models.metrics import evaluate
from mtlrec.models.optim import TaskSampler, TrainStep, make_optimizer


class Trainer:
    """Model, optimizer, steps and state of one run in `step_dir`, resumed if checkpointed."""

    def __init__(
        self,
        build: Callable[[], tf.keras.Model],
        tasks: tuple[TaskConfig, ...],
        cfg: TrainingConfig,
        step_dir: pathlib.Path,
        *,
        steps_per_epoch: int,
        strategy: tf.distribute.Strategy,
        prepare: Callable[[dict], dict] | None = None,
        resume_from: pathlib.Path | None = None,
        warm_start: Callable[[tf.keras.Model], dict] | None = None,
    ) -> None:
        self.cfg, self.strategy, self.steps_per_epoch = cfg, strategy, steps_per_epoch
        tf.keras.utils.set_random_seed(cfg.seed)
        with strategy.scope():
            self.model = build()
            self.optimizer = make_optimizer(cfg, cfg.epochs * steps_per_epoch)
            self.optimizer.build(self.model.trainable_variables)
        self.sampler = TaskSampler(tasks, cfg.seed) if cfg.mode == "alternating" else None
        self.state = TrainingState(
            step_dir / "checkpoints",
            model=self.model,
            optimizer=self.optimizer,
            generator=None if self.sampler is None else self.sampler.generator,
        )
        restored_dir = None if resume_from is None else resume_from / "checkpoints"
        self.resumed_from = self.state.restore(restored_dir)
        _check_same_step(strategy, self.state.step)
        # Only a fresh run starts warm; a resumed one goes on from its checkpoint, whose
        # weights descend from the start its first attempt made, and reports that start.
        if self.resumed_from is None:
            self.warm_start = None if warm_start is None else warm_start(self.model)
            self.state.record_warm_start(self.warm_start)
        else:
            self.warm_start = self.state.warm_start(restored_dir)
        self.history = History(step_dir, int(self.state.epoch.numpy()))
        self.step_fn = TrainStep(
            self.model, self.optimizer, strategy, l2_embedding=cfg.l2_embedding, prepare=prepare
        )
        self.weights = {t.name: t.weight for t in tasks}

    @property
    def epoch(self) -> int:
        return int(self.state.epoch.numpy())

    def stopped(self) -> bool:
        patience = self.cfg.early_stopping_patience
        return patience is not None and int(self.state.bad_epochs.numpy()) >= patience

    def _chunk(self, remaining: int) -> int:
        """Steps of the next compiled call: never past the epoch's end or a checkpoint."""
        if self.sampler is not None:
            return 1  # each alternating step draws its task
        every = self.cfg.checkpoint_every_steps
        to_checkpoint = every - int(self.state.step.numpy()) % every
        return min(self.cfg.steps_per_execution, remaining, to_checkpoint)

    def train_epoch(self, data: tf.data.Dataset) -> tuple[dict[str, float], int, float]:
        """Runs the rest of the current epoch -> (mean train loss per task, rows, seconds)."""
        state, strategy = self.state, self.strategy
        done_before = int(state.step_in_epoch.numpy())
        data = data.take(self.steps_per_epoch).skip(done_before)
        batches = iter(strategy.experimental_distribute_dataset(data))
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        remaining = self.steps_per_epoch - done_before
        start, rows = time.perf_counter(), 0
        while remaining > 0:
            task = None if self.sampler is None else self.sampler.draw()
            result = self.step_fn.run_steps(batches, self._chunk(remaining), task)
            if result.steps == 0:
                break
            for name, value in result.loss_sums.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + result.steps
            rows += result.rows
            remaining -= result.steps
            state.step.assign_add(result.steps)
            state.step_in_epoch.assign_add(result.steps)
            if int(state.step.numpy()) % self.cfg.checkpoint_every_steps == 0:
                state.save()
        losses = {name: sums[name] / counts[name] for name in sums}
        return losses, rows, time.perf_counter() - start

    def end_epoch(self, train_loss: dict, rows: int, seconds: float, results: dict) -> dict:
        """Early-stopping bookkeeping, history record, and the end-of-epoch checkpoint."""
        state = self.state
        eval_loss = sum(self.weights[t] * results[t]["loss"] for t in self.weights)
        if eval_loss < float(state.best_loss.numpy()):
            state.best_loss.assign(eval_loss)
            state.best_epoch.assign(self.epoch)
            state.bad_epochs.assign(0)
            state.save_best()
        else:
            state.bad_epochs.assign_add(1)
        record = {
            "epoch": self.epoch,
            "step": int(state.step.numpy()),
            "train_loss": train_loss,
            "eval": results,
            "eval_loss": eval_loss,
            "weights": self.model.weighting.current_weights(),
            "learning_rate": float(tf.keras.backend.get_value(self.optimizer.learning_rate)),
            "examples_per_s": rows / seconds if seconds > 0 else 0.0,
        }
        self.history.append(record)
        state.epoch.assign_add(1)
        state.step_in_epoch.assign(0)
        state.save()
        return record

    def final(self) -> dict | None:
        """The record of the kept weights: best epoch with early stopping, else the last."""
        if self.cfg.early_stopping_patience is None:
            return self.history.records[-1] if self.history.records else None
        self.state.restore_best()
        return self.history.epoch(int(self.state.best_epoch.numpy()))


def _check_same_step(strategy: tf.distribute.Strategy, step: tf.Variable) -> None:
    """Every worker must resume from the same step, or their collectives would not match.

    Raises:
      RuntimeError: the workers restored different steps (a worker read the chief's
        checkpoints while the chief was replacing them); every worker raises it.
    """
    if strategy.num_replicas_in_sync <= 1:
        return
    value = tf.cast(step, tf.float64)
    # MEAN is all a strategy reduces to; the steps' variance is the same number everywhere.
    local = strategy.run(lambda: tf.stack([value, value * value]))
    mean, mean_square = strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None).numpy()
    if mean_square - mean * mean > 1e-6:
        raise RuntimeError(
            f"multi-worker training: the workers resumed from different steps (mean {mean:.0f}, "
            f"this worker {int(step.numpy())}); start them again together"
        )


def fit(
    build: Callable[[], tf.keras.Model],
    train_data: Callable[[int], tf.data.Dataset],
    eval_data: Callable[[], tf.data.Dataset],
    tasks: tuple[TaskConfig, ...],
    cfg: TrainingConfig,
    step_dir: str | pathlib.Path,
    *,
    steps_per_epoch: int,
    strategy: tf.distribute.Strategy,
    catalogue: Callable[[], dict[str, tf.Tensor]] | None = None,
    prepare: Callable[[dict], dict] | None = None,
    log: Callable[[str], None] | None = None,
    resume_from: str | pathlib.Path | None = None,
    warm_start: Callable[[tf.keras.Model], dict] | None = None,
) -> tuple[tf.keras.Model, dict]:
    """Trains (resuming from `step_dir/checkpoints` if present); returns (model, summary).

    `prepare` maps each batch of `train_data` to features inside the compiled step (see
    `TrainStep`). The returned model holds the best weights on the eval split when early
    stopping is on. `resume_from`: another step directory whose checkpoints to resume from
    (a multi-worker run's chief's, for the other workers, which write into their own).
    `warm_start` initialises a freshly built model (not a resumed one) and returns its report.
    """
    # A child of the "mtlrec" logger, so the CLI's text or JSON formatting applies.
    log = log or logging.getLogger("mtlrec.train").info
    step_dir = pathlib.Path(step_dir)
    step_dir.mkdir(parents=True, exist_ok=True)
    run = Trainer(
        build,
        tasks,
        cfg,
        step_dir,
        steps_per_epoch=steps_per_epoch,
        strategy=strategy,
        prepare=prepare,
        resume_from=None if resume_from is None else pathlib.Path(resume_from),
        warm_start=warm_start,
    )
    if run.resumed_from is not None:
        log(f"resuming from step {run.resumed_from} (epoch {run.epoch})")
    items = catalogue() if catalogue is not None else None
    total_rows, total_seconds, started = 0, 0.0, time.monotonic()
    first_epoch = run.epoch
    while run.epoch < cfg.epochs and not run.stopped():
        train_loss, rows, seconds = run.train_epoch(train_data(run.epoch))
        total_rows, total_seconds = total_rows + rows, total_seconds + seconds
        results = evaluate(run.model, eval_data(), catalogue=items, strategy=strategy)
        record = run.end_epoch(train_loss, rows, seconds, results)
        per_epoch = (time.monotonic() - started) / (run.epoch - first_epoch)
        log(
            f"epoch {run.epoch}/{cfg.epochs}: step {record['step']} "
            f"eval_loss {record['eval_loss']:.4f} ({record['examples_per_s']:.0f} examples/s, "
            f"ETA {per_epoch * (cfg.epochs - run.epoch):.0f} s)"
        )
    final = run.final()
    summary = {
        "steps": int(run.state.step.numpy()),
        "epochs": run.epoch,
        # Counted from 1, as the epoch log lines count (the history's records from 0).
        "best_epoch": int(run.state.best_epoch.numpy()) + 1,
        "stopped_early": run.stopped() and run.epoch < cfg.epochs,
        "resumed_from_step": run.resumed_from,
        "warm_start": run.warm_start,
        "eval": final["eval"] if final else {},
        "eval_losses": {t: m["loss"] for t, m in final["eval"].items()} if final else {},
        "examples_per_s": total_rows / total_seconds if total_seconds > 0 else 0.0,
    }
    return run.model, summary
