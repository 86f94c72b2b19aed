"""Training state on disk: periodic checkpoints for resume, and the best weights so far.

The latest checkpoint holds the model, the optimizer (slots and iteration count), the
progress counters (global step, epoch, step within the epoch), the early-stopping state and
the alternating-task generator, so a rerun after a crash continues exactly where the last
checkpoint left off: the data position is the step within the epoch (the epoch's input
is deterministic and skipped to that batch). Beside it, `warm_start.json` keeps what the
first attempt's warm start carried over: a resumed run goes on from those weights, so it
reports the same start.
"""

from __future__ import annotations

import pathlib

import tensorflow as tf

from mtlrec.features.json_files import read, write_json

WARM_START = "warm_start.json"


def _counter(name: str, value: float = 0, dtype=tf.int64) -> tf.Variable:
    return tf.Variable(tf.constant(value, dtype), trainable=False, name=name)


class TrainingState:
    """Counters plus everything a resumed run restores."""

    def __init__(
        self,
        directory: str | pathlib.Path,
        *,
        model: tf.keras.Model,
        optimizer: tf.keras.optimizers.Optimizer,
        generator: tf.random.Generator | None = None,
        max_to_keep: int = 2,
    ) -> None:
        directory = pathlib.Path(directory)
        self.directory = directory
        self.step = _counter("step")
        self.epoch = _counter("epoch")
        self.step_in_epoch = _counter("step_in_epoch")
        self.bad_epochs = _counter("bad_epochs")
        self.best_epoch = _counter("best_epoch", -1)
        self.best_loss = _counter("best_loss", float("inf"), tf.float64)
        objects = {
            "model": model,
            "optimizer": optimizer,
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "bad_epochs": self.bad_epochs,
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
        }
        if generator is not None:
            objects["task_generator"] = generator
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(directory / "latest"), max_to_keep=max_to_keep
        )
        self._best = tf.train.Checkpoint(model=model)
        self._best_prefix = str(directory / "best" / "model")

    def restore(self, directory: str | pathlib.Path | None = None) -> int | None:
        """Loads the latest checkpoint, if any (of `directory`, another `TrainingState`'s
        directory, when given); returns the step it resumes from."""
        if directory is None:
            latest = self.manager.latest_checkpoint
        else:
            latest = tf.train.latest_checkpoint(str(pathlib.Path(directory) / "latest"))
        if latest is None:
            return None
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def record_warm_start(self, report: dict | None) -> None:
        """Keeps a fresh start's warm-start report (None: a cold start) for its resumes."""
        write_json(self.directory / WARM_START, {"warm_start": report})

    def warm_start(self, directory: str | pathlib.Path | None = None) -> dict | None:
        """The report the checkpoints' first attempt recorded (of `directory`, as `restore`)."""
        return read(pathlib.Path(directory or self.directory) / WARM_START).get("warm_start")

    def save(self) -> None:
        self.manager.save(checkpoint_number=int(self.step.numpy()))

    def save_best(self) -> None:
        self._best.write(self._best_prefix)

    def restore_best(self) -> bool:
        """Loads the best weights; False when no evaluation has been recorded yet."""
        if int(self.best_epoch.numpy()) < 0:
            return False
        self._best.read(self._best_prefix).assert_existing_objects_matched()
        return True
