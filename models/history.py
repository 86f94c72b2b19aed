"""Per-epoch training records: `history.json` and TensorBoard scalars (one per task)."""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

HISTORY_FILE = "history.json"


def _scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar through the core summary op (no `tensorboard` package needed)."""
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)


class History:
    """The epoch records of one training run, kept consistent with its checkpoint.

    Each record: epoch, step, train_loss {task}, eval {task: {loss, metric...}}, eval_loss
    (weighted), weights {task} (current loss weights), learning_rate, examples_per_s.
    """

    def __init__(self, step_dir: pathlib.Path, completed_epochs: int) -> None:
        self.path = step_dir / HISTORY_FILE
        old = json.loads(self.path.read_text()) if self.path.exists() else []
        # Epochs after the restored checkpoint will be redone: drop their records.
        self.records: list[dict] = [r for r in old if r["epoch"] < completed_epochs]
        self.writer = tf.summary.create_file_writer(str(step_dir / "tensorboard"))

    def append(self, record: dict) -> None:
        self.records.append(record)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.records, indent=2))
        tmp.replace(self.path)
        self._tensorboard(record)

    def epoch(self, epoch: int) -> dict | None:
        return next((r for r in self.records if r["epoch"] == epoch), None)

    def _tensorboard(self, record: dict) -> None:
        step = record["step"]
        with self.writer.as_default():
            for task, value in record["train_loss"].items():
                _scalar(f"train_loss/{task}", value, step)
            for task, value in record["weights"].items():
                _scalar(f"loss_weight/{task}", value, step)
            for task, metrics in record["eval"].items():
                for name, value in metrics.items():
                    _scalar(f"eval_{name}/{task}", value, step)
            _scalar("eval_loss/weighted", record["eval_loss"], step)
            _scalar("learning_rate", record["learning_rate"], step)
        self.writer.flush()
