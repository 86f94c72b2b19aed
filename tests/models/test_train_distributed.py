"""Training scales out with tf.distribute: two local workers under MultiWorkerMirroredStrategy.

Each worker is a separate process with its own TF_CONFIG (loopback ports), exactly as on two
machines; the chief's model must evaluate like a single-worker model trained the same way.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from mtlrec.config import load_config

pytestmark = pytest.mark.slow

TRAIN_SCRIPT = """
import json, pathlib, sys
import mtlrec.models
from mtlrec.models.train import train
from mtlrec.config import load_config

config = load_config(overrides=json.loads(sys.argv[1]))
summary = train(config.tasks, config.model, config.training, config.features,
                pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]))
print(json.dumps({"eval": summary["eval"], "steps": summary["steps"]}))
"""

OVERRIDES = [
    "training.epochs=3",
    "training.steps_per_epoch=60",
    "training.batch_size=256",
    "training.l2_embedding=0.003",
    "training.early_stopping_patience=null",
    "training.strategy=auto",
]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory) -> pathlib.Path:
    from mtlrec.datasets.synthetic.generate import generate
    from mtlrec.pipeline.preprocess import run_preprocess, run_validate

    root = tmp_path_factory.mktemp("dist")
    generate(root / "raw", users=500, items=100, days=8, seed=5, progress=False)
    config = load_config()
    in_process = [
        "--runner=FnApiRunner",
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    ]
    run_validate(config.job_config(), root / "raw", root / "validate", beam_args=in_process)
    run_preprocess(
        config.job_config(), root / "validate", root / "preprocess", beam_args=in_process
    )
    return root


def _launch(root: pathlib.Path, step_dir: pathlib.Path, tf_config: dict | None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, json.dumps(OVERRIDES), str(root / "preprocess"),
         str(step_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_workers_train_a_model_that_evaluates_like_one(preprocessed):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [
        _launch(
            preprocessed,
            preprocessed / f"worker{i}",
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    results = [_result(w) for w in workers]
    single = _result(_launch(preprocessed, preprocessed / "single", None))

    # Both workers ran the same synchronous steps and hold the same weights.
    assert results[0]["steps"] == results[1]["steps"] == single["steps"] == 180
    assert results[0]["eval"]["click"]["auc"] == pytest.approx(results[1]["eval"]["click"]["auc"])
    assert (preprocessed / "worker0" / "model" / "model_spec.json").exists()
    # Two replicas see the global batch split in two, so the run is not bit-identical to a
    # single worker; it must still learn the same signal to the same level.
    print("two workers:", results[0]["eval"], "single:", single["eval"])
    for task in ("click", "purchase"):
        assert results[0]["eval"][task]["auc"] == pytest.approx(
            single["eval"][task]["auc"], abs=0.03
        )
        # On the validation split (the latest tenth of the training span, ~1.6 k rows),
        # where single-worker runs reach 0.58-0.62; chance is 0.5.
        assert results[0]["eval"][task]["auc"] > 0.55
