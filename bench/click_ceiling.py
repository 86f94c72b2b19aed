"""How close to the oracle a click model can get on a world's data: the generator's own form.

The click target of issue 22 is the model's test AUC ≥ 0.97× the oracle's (the AUC of the
true click probability). This bench fits the model the generator samples from —
p(click) = sigmoid(b + u·v + b_item + b_device + w·price) × (1 + position)^−γ, with the
world's latent dimension, γ learnt — on the product's own preprocessed splits (`mtlrec
validate` + `mtlrec preprocess`), selecting L2 on validation and reporting test AUC / oracle.
With the right form and dimension, what is left is estimation error: the ratio says what the
data allow, and how it grows with more days of traffic per user.

    python -m bench.click_ceiling [--worlds default wide ...] [--days 14 56]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench.common import format_table, write_results  # noqa: E402
from bench.worlds import WORLDS  # noqa: E402

COLUMNS = ("user_id", "item_id", "device", "position", "price")
L2 = (0.0, 1e-6, 1e-5)
FLAGS = {
    "latent_dim": "--latent-dim",
    "affinity": "--affinity",
    "popularity_skew": "--popularity-skew",
    "position_decay": "--position-decay",
    "task_correlation": "--task-correlation",
    "seed": "--seed",
}


def _mtlrec(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "mtlrec", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"mtlrec {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")


def _split(preprocess: pathlib.Path, name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    spec = tft.TFTransformOutput(str(preprocess / "transform_fn")).transformed_feature_spec()
    files = sorted(str(f) for f in preprocess.glob(f"{name}-*.tfrecord.gz"))
    wanted = {c: spec[c] for c in (*COLUMNS, "click")}
    batches = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192)
    parsed = [tf.io.parse_example(b, wanted) for b in batches]
    columns = {c: np.concatenate([p[c].numpy() for p in parsed]) for c in wanted}
    return {c: columns[c] for c in COLUMNS}, columns["click"]


class GeneratorForm(tf.keras.Model):
    """The generator's click model with free parameters (`datasets/synthetic/events.py`)."""

    def __init__(self, users: int, items: int, devices: int, dim: int, l2: float) -> None:
        super().__init__()
        reg = tf.keras.regularizers.l2(l2) if l2 else None

        def table(rows: int, width: int, stddev: float) -> tf.keras.layers.Embedding:
            init = tf.keras.initializers.RandomNormal(stddev=stddev, seed=rows + width)
            return tf.keras.layers.Embedding(
                rows, width, embeddings_initializer=init, embeddings_regularizer=reg
            )

        self.user, self.item = table(users, dim, 0.05), table(items, dim, 0.05)
        self.item_bias, self.device_bias = table(items, 1, 0.0), table(devices, 1, 0.0)
        self.price = tf.keras.layers.Dense(1)
        self.gamma = tf.Variable(0.5)

    def call(self, x: dict[str, tf.Tensor]) -> tf.Tensor:
        logit = (
            tf.reduce_sum(self.user(x["user_id"]) * self.item(x["item_id"]), -1)
            + tf.squeeze(self.item_bias(x["item_id"]), -1)
            + tf.squeeze(self.device_bias(x["device"]), -1)
            + tf.squeeze(self.price(x["price"][:, None]), -1)
        )
        position = tf.math.log1p(tf.cast(x["position"], tf.float32))
        return tf.sigmoid(logit) * tf.exp(-tf.nn.softplus(self.gamma) * position)


def fit(splits: dict, dim: int, l2: float) -> tuple[float, float]:
    """Validation and test AUC of the form fitted with early stopping on validation loss."""
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        splits[s] for s in ("train", "validation", "eval")
    )
    sizes = {c: int(max(s[0][c].max() for s in splits.values())) + 1 for c in COLUMNS[:3]}
    tf.keras.utils.set_random_seed(0)
    model = GeneratorForm(sizes["user_id"], sizes["item_id"], sizes["device"], dim, l2)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.002), loss="binary_crossentropy")
    stop = tf.keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(
        train_x, train_y, validation_data=(val_x, val_y), batch_size=1024, epochs=40,
        verbose=0, callbacks=[stop],
    )  # fmt: skip
    score = lambda x: model.predict(x, batch_size=8192, verbose=0)  # noqa: E731
    return roc_auc_score(val_y, score(val_x)), roc_auc_score(test_y, score(test_x))


def measure(world: str, days: int, work: pathlib.Path) -> dict:
    knobs = {"latent_dim": 8, **WORLDS[world]}
    raw, workdir = work / f"{world}-{days}" / "raw", work / f"{world}-{days}" / "work"
    flags = [a for k, v in knobs.items() for a in (FLAGS[k], str(v))]
    _mtlrec("generate", "--out", str(raw), "--days", str(days), *flags)
    for step in ("validate", "preprocess"):
        _mtlrec(step, "--data", str(raw), "--workdir", str(workdir), "--run-id", "r")
    preprocess = workdir / "runs" / "r" / "preprocess"
    splits = {s: _split(preprocess, s) for s in ("train", "validation", "eval")}
    trials = [(l2, *fit(splits, knobs["latent_dim"], l2)) for l2 in L2]
    l2, validation_auc, test_auc = max(trials, key=lambda t: t[1])
    oracle = json.loads((raw / "truth.json").read_text())["oracle"]["click_auc_eval"]
    return {
        "world": world,
        "days": days,
        "train_examples": len(splits["train"][1]),
        "l2": l2,
        "validation_auc": validation_auc,
        "test_auc": test_auc,
        "oracle_auc": oracle,
        "ratio": test_auc / oracle,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.click_ceiling", description=__doc__)
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--days", nargs="+", type=int, default=[14, 56])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as tmp:
        runs = []
        for world in args.worlds:
            for days in args.days:
                print(f"click ceiling: {world}, {days} days ...", file=sys.stderr, flush=True)
                runs.append(measure(world, days, pathlib.Path(tmp)))
    rows = [
        [r["world"], r["days"], r["train_examples"], r["l2"], r["test_auc"], r["oracle_auc"],
         r["ratio"]]
        for r in runs
    ]  # fmt: skip
    columns = ["world", "days", "train rows", "L2", "test AUC", "oracle", "test / oracle"]
    print(format_table("The generator's own click model, test split", columns, rows))
    print(f"\nwrote {write_results('click_ceiling', {'runs': runs})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
