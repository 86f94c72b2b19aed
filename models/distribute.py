"""tf.distribute for the train step: the strategy, and which worker writes.

Under MultiWorkerMirroredStrategy every worker runs the same synchronous steps and must save
checkpoints and the model too (saving runs collectives), but only the chief's copies are the
step's outputs: the other workers write into a temporary directory of their own, deleted
when training ends, and resume from the chief's checkpoints (the pattern of TensorFlow's
multi-worker Keras guide). The chief is the `chief` task, else worker 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's task in TF_CONFIG (`task_type` None: no cluster, a single worker)."""

    task_type: str | None = None
    index: int = 0
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        if self.task_type is None or self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.index == 0 and not self.has_chief


def worker_role(environ: Mapping[str, str] = os.environ) -> WorkerRole:
    """The role TF_CONFIG gives this process.

    Raises:
      ValueError: TF_CONFIG is not JSON with a `task` of `type` and `index`.
    """
    raw = environ.get("TF_CONFIG")
    if not raw:
        return WorkerRole()
    try:
        tf_config = json.loads(raw)
        task = tf_config["task"]
        return WorkerRole(
            str(task["type"]), int(task["index"]), "chief" in tf_config.get("cluster", {})
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"TF_CONFIG: expected JSON with task.type and task.index ({e})") from None


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MultiWorkerMirroredStrategy when TF_CONFIG is set, else the default strategy."""
    if name == "multi_worker" or (name == "auto" and os.environ.get("TF_CONFIG")):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def output_dir(step_dir: pathlib.Path, role: WorkerRole) -> Iterator[pathlib.Path]:
    """`step_dir` for the chief; a temporary directory, removed afterwards, for the others."""
    if role.is_chief:
        yield step_dir
        return
    temp = pathlib.Path(tempfile.mkdtemp(prefix=f"mtlrec-{role.task_type}{role.index}-"))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)
