"""Crash and resume: kill a training process mid-epoch, rerun, it finishes the same run."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import mtlrec.models
    import tensorflow as tf
    from mtlrec.features.config import FeaturesConfig
    from mtlrec.features.declarations import feature_set
    from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TrainingConfig
    from mtlrec.models.loop import fit
    from mtlrec.models.model import build_model

    step_dir, delay = sys.argv[1], float(sys.argv[2])
    fs = feature_set(FeaturesConfig(), ("click", "purchase", "dwell"))
    vocab = {"user_id": 40, "item_id": 30, "device": 3, "country": 4, "age_bucket": 5,
             "category": 6, "brand": 7}

    def rows(seed, n):
        r = np.random.default_rng(seed)
        f = {k: r.integers(0, 3, n) for k in
             ("device", "country", "age_bucket", "category", "brand", "hour", "weekday",
              "position")}
        f["user_id"], f["item_id"] = r.integers(0, 40, n), r.integers(0, 30, n)
        f["price"] = r.normal(size=n).astype("float32")
        click = (r.random(n) < 0.2 + 0.5 * (f["item_id"] < 10)).astype("float32")
        f.update(click=click, purchase=click * (r.random(n) < 0.3), dwell_mask=click,
                 dwell=r.normal(size=n).astype("float32"),
                 item_log_q=np.full(n, np.log(1 / 30), "float32"))
        return tf.data.Dataset.from_tensor_slices(f)

    def pause(batch):
        # Slows each step so the parent can kill the process mid-training.
        token = tf.py_function(lambda: time.sleep(delay) or 0.0, [], tf.float32)
        return {**batch, "pause": token}

    def train_data(epoch):
        data = rows(1, 2000).shuffle(2000, seed=epoch).repeat().batch(32)
        return data.map(pause)

    cfg = TrainingConfig(mode="alternating", epochs=3, steps_per_epoch=40, batch_size=32,
                         checkpoint_every_steps=10, early_stopping_patience=None, seed=7)
    model, summary = fit(
        lambda: build_model(fs, DEFAULT_TASKS, ModelConfig(), vocab, serving_position=0),
        train_data, lambda: rows(2, 500).batch(250), DEFAULT_TASKS, cfg, step_dir,
        steps_per_epoch=40, strategy=tf.distribute.get_strategy(), log=lambda m: None)
    probe = {k: v[:20] for k, v in next(iter(rows(3, 20).batch(20))).items()}
    summary["probe"] = {k: v.numpy().tolist() for k, v in model.predict_tasks(probe).items()}
    print(json.dumps(summary))
    """
)


def _run(script: pathlib.Path, step_dir: pathlib.Path, delay: float) -> dict:
    done = subprocess.run(
        [sys.executable, str(script), str(step_dir), str(delay)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checkpoint_step(step_dir: pathlib.Path) -> int:
    """Step of the checkpoint a rerun restores: the one the `checkpoint` file names.

    Not the newest `ckpt-*.index` on disk: a kill can land after a checkpoint's files are
    written and before the `checkpoint` file (replaced atomically) names it.
    """
    index = step_dir / "checkpoints" / "latest" / "checkpoint"
    if not index.exists():
        return 0
    first_line = index.read_text().splitlines()[0]  # model_checkpoint_path: "ckpt-<step>"
    return int(first_line.split('"')[1].rsplit("-", 1)[1])


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_total_steps(tmp_path):
    script = tmp_path / "train_job.py"
    script.write_text(SCRIPT)
    crashed = tmp_path / "crashed"
    job = subprocess.Popen(
        [sys.executable, str(script), str(crashed), "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        # Kill in the second epoch, after at least one mid-epoch checkpoint (step 50).
        while _checkpoint_step(crashed) < 50 and job.poll() is None:
            assert time.monotonic() < deadline, "training never reached step 50"
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
    finally:
        assert job.wait() == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = _checkpoint_step(crashed)
    assert 50 <= killed_at < 120

    resumed = _run(script, crashed, 0.0)
    assert resumed["resumed_from_step"] == killed_at
    assert resumed["steps"] == 120 and resumed["epochs"] == 3
    history = json.loads((crashed / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert [r["step"] for r in history] == [40, 80, 120]

    straight = _run(script, tmp_path / "straight", 0.0)
    assert straight["resumed_from_step"] is None and straight["steps"] == 120
    # Same batches, same task draws, same optimizer state: the same model.
    for task, values in straight["probe"].items():
        np.testing.assert_allclose(resumed["probe"][task], values, rtol=1e-3, atol=1e-4)
