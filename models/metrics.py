"""Evaluation of every task on a dataset: loss, AUC / RMSE, FactorizedTopK recall@K."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

DEFAULT_KS = (10, 50, 100)


def usable_ks(catalogue: dict[str, tf.Tensor], ks: tuple[int, ...]) -> tuple[int, ...]:
    """The cut-offs a catalogue this size can answer (a K above its size means nothing)."""
    size = int(tf.shape(catalogue["item_id"])[0])
    return tuple(k for k in ks if k <= size) or (size,)


def topk_metric(
    model, catalogue: dict[str, tf.Tensor], ks: tuple[int, ...]
) -> tfrs.metrics.FactorizedTopK:
    """FactorizedTopK over the whole catalogue (brute force over every item's embedding)."""
    ids = catalogue["item_id"]
    usable = usable_ks(catalogue, ks)
    index = tfrs.layers.factorized_top_k.BruteForce(k=max(usable))
    index.index(model.candidate_embedding(catalogue), identifiers=ids)
    return tfrs.metrics.FactorizedTopK(candidates=index, ks=usable)


def evaluate(
    model,
    dataset: tf.data.Dataset,
    *,
    catalogue: dict[str, tf.Tensor] | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, dict[str, float]]:
    """{task: {"loss": mean loss, metric: value}} over `dataset`.

    Binary tasks report `auc`, regression `rmse` (masked rows excluded), retrieval
    `recall@K` (share of positive pairs whose item is in the query's top K of the whole
    catalogue) when `catalogue` is given. Runs in the replica context of `strategy` (the
    one the model was built in), where metric variables can be updated.
    """
    strategy = strategy or tf.distribute.get_strategy()
    for layer in model.task_layers.values():
        for metric in getattr(layer, "task_metrics", []):
            metric.reset_state()
    retrieval = next((n for n, k in model.task_kinds.items() if k.ranks_catalogue), None)
    topk = None
    if retrieval is not None and catalogue is not None:
        with strategy.scope():
            topk = topk_metric(model, catalogue, ks)

    def replica_step(batch):
        losses = model.task_losses(batch, training=False, compute_metrics=True, topk=topk)
        rows = tf.cast(tf.shape(batch["item_id"])[0], tf.float32)
        return {name: loss * rows for name, loss in losses.items()}, rows

    @tf.function(reduce_retracing=True)
    def step(batch):
        weighted, rows = strategy.run(replica_step, args=(batch,))
        total = tf.distribute.ReduceOp.SUM
        sums = {k: strategy.reduce(total, v, axis=None) for k, v in weighted.items()}
        return sums, strategy.reduce(total, rows, axis=None)

    sums: dict[str, float] = {}
    rows = 0.0
    for batch in strategy.experimental_distribute_dataset(dataset):
        batch_sums, batch_rows = step(batch)
        for name, value in batch_sums.items():
            sums[name] = sums.get(name, 0.0) + float(value)
        rows += float(batch_rows)
    if rows == 0:
        raise ValueError("evaluation dataset is empty: the eval split has no rows")
    results: dict[str, dict[str, float]] = {}
    for name, layer in model.task_layers.items():
        results[name] = {"loss": sums[name] / rows}
        for metric in getattr(layer, "task_metrics", []):
            results[name][metric.name] = float(metric.result())
    if topk is not None:
        for k, value in zip(usable_ks(catalogue, ks), topk.result(), strict=True):
            results[retrieval][f"recall@{k}"] = float(value)
    return results
