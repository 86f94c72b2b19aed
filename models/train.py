"""The train step: transformed TFRecords in, trained model + checkpoints + logs out."""

from __future__ import annotations

import itertools
import json
import math
import pathlib

import tensorflow as tf

from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import feature_set
from mtlrec.models.config import ModelConfig, TaskConfig, TrainingConfig
from mtlrec.models.data import item_catalogue, vocab_sizes_from_tft
from mtlrec.models.distribute import make_strategy, output_dir, worker_role
from mtlrec.models.loop import fit
from mtlrec.models.memory_input import open_split
from mtlrec.models.model import build_model, save_model
from mtlrec.models.tasks import kind_of
from mtlrec.models.warm_start import Source, warm_start

TRANSFORM_DIR = "transform_fn"
TRAIN_PATTERN = "train-*.tfrecord.gz"
VALIDATION_PATTERN = "validation-*.tfrecord.gz"
"""Training selects on the validation split; the test split (`eval-*`) is never opened."""


def train(
    tasks: tuple[TaskConfig, ...],
    model_cfg: ModelConfig,
    training_cfg: TrainingConfig,
    features_cfg: FeaturesConfig,
    preprocess_dir: str | pathlib.Path,
    step_dir: str | pathlib.Path,
    warm_start_from: Source | None = None,
) -> dict:
    """Trains the multi-task model on `preprocess_dir` and writes `step_dir`.

    Writes `model/` (weights + model_spec.json), `checkpoints/` (resume after a crash),
    `tensorboard/` and `history.json` (a worker other than the chief of a multi-worker run
    writes them into a temporary directory: `mtlrec.models.distribute`); returns the summary
    (steps, epochs, per-task validation losses and metrics of the kept weights, examples/s,
    and `warm_start`: what a start from `warm_start_from` carried over, or None).

    Raises:
      ValueError: the preprocess output is missing, or a config name is unknown.
    """
    preprocess_dir, step_dir = pathlib.Path(preprocess_dir), pathlib.Path(step_dir)
    tft_dir = preprocess_dir / TRANSFORM_DIR
    if not tft_dir.is_dir():
        raise ValueError(f"{tft_dir} not found: run the preprocess step first")
    tasks = tuple(tasks)
    fs = feature_set(features_cfg, tuple(t.label for t in tasks if t.label is not None))
    vocab_sizes = vocab_sizes_from_tft(tft_dir, fs)
    cfg = training_cfg
    # Before any op runs: a multi-worker strategy configures collectives at program start.
    strategy = make_strategy(cfg.strategy)
    budget = cfg.input_memory_mb * 2**20
    train_split = open_split(
        preprocess_dir / TRAIN_PATTERN, tft_dir, passthrough=False, max_bytes=budget
    )
    validation_split = open_split(
        preprocess_dir / VALIDATION_PATTERN,
        tft_dir,
        passthrough=True,
        max_bytes=max(0, budget - train_split.nbytes) if train_split.in_memory else 0,
    )
    steps_per_epoch = cfg.steps_per_epoch or math.ceil(train_split.rows() / cfg.batch_size)

    def train_data(epoch: int) -> tf.data.Dataset:
        return train_split.train_batches(
            cfg.batch_size,
            seed=cfg.seed + epoch,
            repeat=cfg.steps_per_epoch is not None,
            shuffle_buffer=cfg.shuffle_buffer,
        )

    def eval_data() -> tf.data.Dataset:
        return validation_split.batches(cfg.batch_size, shuffle=False, seed=cfg.seed)

    def catalogue() -> dict[str, tf.Tensor]:
        def every_row(split):
            return split.batches(4096, shuffle=False, seed=cfg.seed)

        return item_catalogue(
            itertools.chain(every_row(train_split), every_row(validation_split)), fs
        )

    role = worker_role()
    with output_dir(step_dir, role) as out:
        model, summary = fit(
            lambda: build_model(
                fs, tasks, model_cfg, vocab_sizes, serving_position=features_cfg.serving_position
            ),
            train_data,
            eval_data,
            tasks,
            cfg,
            out,
            steps_per_epoch=steps_per_epoch,
            strategy=strategy,
            catalogue=catalogue if any(kind_of(t).ranks_catalogue for t in tasks) else None,
            prepare=train_split.prepare,
            resume_from=None if role.is_chief else step_dir,
            warm_start=None
            if warm_start_from is None
            else lambda m: warm_start(m, warm_start_from, tft_dir),
        )
        # The summary's "eval" metrics are the kept weights' on the validation split.
        summary["input"] = {"train": train_split.source, "validation": validation_split.source}
        summary["chief"] = role.is_chief
        save_model(model, out / "model")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
