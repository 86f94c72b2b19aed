"""Serving latency (p50/p99) and throughput of the exported SavedModels, in-process.

Synthetic logs go through the product's validate, preprocess, a short train and
`mtlrec.deploy.export.export_all`; then each SavedModel is loaded alone in a child process with
`tf.saved_model.load` and its `serving_default` signature is called one request at a time:
- ranker: 1 user × 100 candidates (raw features; the tf.Transform graph is inside);
- retriever: top 100 over the exported catalogue, and over catalogues of 10 k, 100 k and
  1 M items built through the same `mtlrec.deploy.signatures.retriever` code path with random
  item embeddings of the item tower's width (so only the index size varies);
- recommender: retrieve 200 → rank → top 100 for one user.

    python -m bench.serving [--size tiny|default] [--catalogues 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile
import time

import numpy as np

from bench.common import emit_child_result, format_table, latency_summary, run_child, write_results
from bench.synthetic_run import prepare

CANDIDATES = 100
WARMUP_CALLS = 10
# Issue 8 targets (2 cores, in-process): ranker p99 for 100 candidates, retriever p99 at 100 k.
TARGET_P99_MS = {"ranker": 10.0, "retriever@100000": 20.0}


@dataclasses.dataclass(frozen=True)
class Size:
    users: int
    days: int
    train_steps: int
    calls: int
    catalogues: tuple[int, ...]


SIZES = {
    "tiny": Size(users=120, days=4, train_steps=5, calls=20, catalogues=(1000,)),
    "default": Size(
        users=1000, days=14, train_steps=100, calls=300, catalogues=(10_000, 100_000, 1_000_000)
    ),
}


def _feature_set():
    from mtlrec.features.config import FeaturesConfig
    from mtlrec.features.declarations import feature_set
    from mtlrec.models.config import DEFAULT_TASKS

    return feature_set(FeaturesConfig(), tuple(t.label for t in DEFAULT_TASKS if t.label))


def train_and_export(
    preprocess: pathlib.Path, work: pathlib.Path, size: Size
) -> tuple[object, dict[str, str]]:
    """A briefly trained model on the preprocessed run → the three exported models."""
    import pyarrow.parquet as pq

    from mtlrec.deploy.config import ExportConfig
    from mtlrec.deploy.export import export_all, model_names
    from mtlrec.features.config import FeaturesConfig
    from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TrainingConfig
    from mtlrec.models.model import load_model
    from mtlrec.models.train import train

    cfg = TrainingConfig(epochs=1, steps_per_epoch=size.train_steps, early_stopping_patience=None)
    train(DEFAULT_TASKS, ModelConfig(), cfg, FeaturesConfig(), preprocess, work / "train")
    model = load_model(work / "train" / "model", preprocess / "transform_fn")
    export_cfg = ExportConfig()
    exported = export_all(
        model,
        preprocess / "transform_fn",
        pq.read_table(preprocess / "catalog.parquet"),
        pq.read_table(preprocess / "eval_sample.parquet"),
        export_cfg,
        FeaturesConfig(),
        DEFAULT_TASKS,
        work / "serving",
    )
    names = model_names(export_cfg.model_prefix)
    return model, {role: exported[name] for role, name in names.items()}


def random_catalogue_retriever(
    model, tft_dir: pathlib.Path, items: int, path: pathlib.Path, k: int = CANDIDATES
) -> pathlib.Path:
    """A retriever SavedModel over `items` random item embeddings, via mtlrec.deploy.signatures."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from mtlrec.deploy import signatures

    transform = signatures.Transform(
        tft.TFTransformOutput(str(tft_dir)).transform_features_layer(), _feature_set()
    )
    dim = int(model.spec["model"]["embedding_dim"])
    rng = np.random.default_rng(items)
    catalog = signatures.Catalog(
        item_ids=np.array([f"item{i}" for i in range(items)], dtype=object),
        features={},
        embeddings=tf.constant(rng.standard_normal((items, dim), dtype=np.float32)),
    )
    serving = signatures.retriever(model, transform, catalog, k)
    tf.saved_model.save(serving.module, str(path), signatures=serving.signatures)
    return path


def write_requests(preprocess: pathlib.Path, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """One request per role from real evaluation rows and catalogue items, as .npz files."""
    import pyarrow.parquet as pq

    from mtlrec.deploy import signatures
    from mtlrec.deploy.export import raw_arrays
    from mtlrec.features.declarations import Side

    fs = _feature_set()
    rows = raw_arrays(
        pq.read_table(preprocess / "eval_sample.parquet"), signatures.pair_columns(fs), "eval"
    )
    item_columns = signatures.raw_columns(fs, (Side.CANDIDATE,))
    items = raw_arrays(pq.read_table(preprocess / "catalog.parquet"), item_columns, "catalog")
    picks = np.arange(CANDIDATES) % len(items["item_id"])
    query = {c: rows[c][:1] for c in signatures.query_columns(fs)}
    ranker = {c: np.repeat(v, CANDIDATES) for c, v in query.items()}
    ranker.update({c: items[c][picks] for c in item_columns})
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, request in (("ranker", ranker), ("query", query)):
        paths[role] = out / f"{role}.npz"
        np.savez(paths[role], **{c: _storable(v) for c, v in request.items()})
    return paths


def _storable(values: np.ndarray) -> np.ndarray:
    """Strings as fixed-width bytes, so the .npz loads without pickle."""
    return values.astype(bytes) if values.dtype == object else values


def measure(model_dir: pathlib.Path, request: pathlib.Path, calls: int) -> dict:
    """Child side: load the SavedModel, call serving_default `calls` times, one at a time."""
    import tensorflow as tf

    load_start = time.perf_counter()
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    load_seconds = time.perf_counter() - load_start
    inputs = serve.structured_input_signature[1]
    with np.load(request) as stored:
        feed = {name: tf.constant(stored[name]) for name in inputs}
    for _ in range(WARMUP_CALLS):
        serve(**feed)
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        serve(**feed)
        seconds.append(time.perf_counter() - start)
    rows = int(next(iter(feed.values())).shape[0])
    return {"load_seconds": load_seconds, "request_rows": rows, **latency_summary(seconds)}


def run(size: Size, preprocess: pathlib.Path, work: pathlib.Path) -> dict:
    print("serving bench: train, export ...", file=sys.stderr, flush=True)
    model, exported = train_and_export(preprocess, work, size)
    requests = write_requests(preprocess, work / "requests")
    import pyarrow.parquet as pq

    n_items = pq.ParquetFile(preprocess / "catalog.parquet").metadata.num_rows
    plan = [
        ("ranker", exported["ranker"], requests["ranker"], n_items),
        ("retriever", exported["retriever"], requests["query"], n_items),
        ("recommender", exported["recommender"], requests["query"], n_items),
    ]
    for items in size.catalogues:
        print(f"serving bench: retriever over {items:,} items ...", file=sys.stderr, flush=True)
        path = random_catalogue_retriever(
            model, preprocess / "transform_fn", items, work / f"retriever-{items}"
        )
        plan.append(("retriever", str(path), requests["query"], items))
    rows = []
    for role, model_dir, request, items in plan:
        args = ["--measure", str(model_dir), "--request", str(request), "--calls", str(size.calls)]
        child = run_child("bench.serving", args)
        rows.append(
            {
                "model": role,
                "catalogue_items": items,
                **child.result,
                "peak_rss_mb": child.peak_rss_mb,
            }
        )
    return {"size": dataclasses.asdict(size), "rows": rows, "targets": targets(rows)}


def targets(rows: list[dict]) -> dict:
    """Each issue-8 latency target with the measured p99 and whether it is met."""
    measured = {r["model"]: r for r in rows if r["model"] == "ranker"}
    measured.update(
        {f"retriever@{r['catalogue_items']}": r for r in rows if r["model"] == "retriever"}
    )
    out = {}
    for key, limit in TARGET_P99_MS.items():
        if key in measured:
            p99 = measured[key]["p99_ms"]
            out[key] = {"p99_ms": p99, "limit_ms": limit, "met": p99 <= limit}
    return out


def table(result: dict) -> str:
    columns = ["model", "catalogue", "rows/request", "p50 ms", "p99 ms", "calls/s", "load s"]
    body = [
        [
            r["model"],
            r["catalogue_items"],
            r["request_rows"],
            r["p50_ms"],
            r["p99_ms"],
            r["calls_per_s"],
            r["load_seconds"],
        ]
        for r in result["rows"]
    ]
    target_rows = [
        [key, t["p99_ms"], t["limit_ms"], t["met"]] for key, t in result["targets"].items()
    ]
    return "\n\n".join(
        [
            format_table("Serving latency, one request at a time (in-process)", columns, body),
            format_table("Targets (p99)", ["model", "p99 ms", "limit ms", "met"], target_rows),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--catalogues", type=int, nargs="*", help="random-catalogue sizes")
    parser.add_argument("--workdir", help="keep (and reuse) the synthetic run here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--request", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        emit_child_result(
            measure(pathlib.Path(args.measure), pathlib.Path(args.request), args.calls)
        )
        return 0
    size = SIZES[args.size]
    if args.catalogues is not None:
        size = dataclasses.replace(size, catalogues=tuple(args.catalogues))
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        print("serving bench: generate + preprocess ...", file=sys.stderr, flush=True)
        preprocess, _ = prepare(pathlib.Path(args.workdir or tmp), size.users, size.days)
        result = run(size, preprocess, pathlib.Path(tmp))
    print(table(result))
    print(f"\nwrote {write_results('serving', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
