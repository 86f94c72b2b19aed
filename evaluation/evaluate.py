"""The evaluate step: metrics of the trained model, its baselines and slices (SPEC §9, §13).

Writes `<run>/evaluate/metrics.json` (stable keys: one object per task, `baselines`,
`slices`, `counts`), `curves.json` (ROC and calibration points), and the report.
"""

from __future__ import annotations

import functools
import logging
import pathlib
from typing import Any

import numpy as np
import tensorflow_transform as tft

from mtlrec.evaluation import baselines, report, report_plots, report_tables, slices, task_metrics
from mtlrec.evaluation import stream as eval_stream
from mtlrec.evaluation.bless import primary_metrics
from mtlrec.evaluation.config import EvaluateConfig, EvaluationConfig
from mtlrec.features.declarations import CLICK, LABELS, RANKING_MASK
from mtlrec.features.json_files import read, write_json
from mtlrec.models.config import TaskConfig
from mtlrec.models.model import load_model
from mtlrec.models.tasks import kind_of

_LOG = logging.getLogger(__name__)

RESERVED = report_tables.NON_TASK_KEYS


def _labels(tasks: tuple[TaskConfig, ...], available: set[str]) -> tuple[list[str], str | None]:
    """Label columns to read, and the label marking retrieval relevance (None = every row)."""
    names = []
    for task in tasks:
        if task.label is not None:
            label = LABELS[task.label]
            names += [label.name] + ([label.mask] if label.mask else [])
    missing = sorted(set(names) - available)
    if missing:
        raise ValueError(
            f"the transformed data has no label column(s) {missing} for tasks "
            f"{[t.name for t in tasks]}; re-run the preprocess step with the current tasks"
        )
    retrieval = _retrieval_task(tasks)
    query_label = None
    if retrieval is not None and retrieval.retrieval_on_clicks:
        if CLICK not in available:
            raise ValueError(
                f"tasks.{retrieval.name}.retrieval_on_clicks is true but the data has no click "
                "label; set it to false to treat every eval interaction as relevant"
            )
        query_label = CLICK
    if CLICK in available:
        names.append(CLICK)
    if RANKING_MASK in available:
        names.append(RANKING_MASK)
    return list(dict.fromkeys(names)), query_label


def _retrieval_task(tasks: tuple[TaskConfig, ...]) -> TaskConfig | None:
    return next((t for t in tasks if kind_of(t).ranks_catalogue), None)


class Evaluation:
    """The eval split, its retrieval queries and the training-span counts of one run.

    The rows are those of the first model streamed through it (`stream`), or the ones
    `adopt` is given (the last blessed model's, `mtlrec.evaluation.rescore`).
    """

    def __init__(
        self,
        tasks: tuple[TaskConfig, ...],
        evaluation: EvaluationConfig,
        run_dir: pathlib.Path,
    ) -> None:
        self.tasks = tasks
        self.evaluation = evaluation
        self.run_dir = pathlib.Path(run_dir)
        self.preprocess_dir = self.run_dir / "preprocess"
        self.transform_dir = self.preprocess_dir / eval_stream.TRANSFORM_DIR
        spec = tft.TFTransformOutput(str(self.transform_dir)).transformed_feature_spec()
        self.labels, self.query_label = _labels(tasks, set(spec))
        self.retrieval = _retrieval_task(tasks)
        self.catalogue_ids = eval_stream.catalogue_ids(self.preprocess_dir)
        self.rows: eval_stream.EvalRows | None = None
        self.queries: task_metrics.Queries | None = None

    @functools.cached_property
    def train(self) -> dict[str, np.ndarray]:
        """Keys and labels of the training split (popularity and the slice tiers)."""
        return eval_stream.read_training_columns(
            self.preprocess_dir, ["user_key", "item_key", *self.labels]
        )

    def stream(self, model) -> eval_stream.EvalRows:
        """Streams the eval split through `model`; the first call also fixes the queries."""
        rows = eval_stream.stream_eval(
            model,
            self.preprocess_dir,
            self.labels,
            with_queries=any(k.ranks_catalogue for k in model.task_kinds.values()),
            query_label=self.query_label,
        )
        if self.rows is None:
            self.adopt(rows)
        return rows

    def adopt(self, rows: eval_stream.EvalRows) -> None:
        """Measures on `rows` from now on, with the retrieval queries they hold."""
        self.rows = rows
        if self.query_label is None:
            relevant = np.ones(rows.size, bool)
        else:
            relevant = rows.columns[self.query_label] > 0
        self.queries = task_metrics.build_queries(rows.columns, relevant, self.catalogue_ids)

    def ranked_by_model(
        self, model, rows: eval_stream.EvalRows, transform_dir: pathlib.Path | None = None
    ) -> np.ndarray:
        """Top-K catalogue indices per query from the model's user and item towers; the
        catalogue goes through `transform_dir` (default: this run's transform graph)."""
        catalogue = eval_stream.embed_catalogue(
            model, self.preprocess_dir, transform_dir or self.transform_dir
        )
        if not np.array_equal(catalogue.item_ids, self.catalogue_ids):
            raise ValueError("the embedded catalogue does not match catalog.parquet's item ids")
        position = {row: i for i, row in enumerate(rows.query_rows)}
        query_embeddings = rows.query_embeddings[[position[r] for r in self.queries.rows]]
        return eval_stream.top_k(query_embeddings, catalogue.embeddings, max(self.ks))

    @property
    def ks(self) -> tuple[int, ...]:
        return self.evaluation.ks

    def metrics(
        self,
        tasks: tuple[TaskConfig, ...],
        predictions: dict[str, np.ndarray],
        ranked: np.ndarray | None,
        rows: np.ndarray | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metrics, counts) per task on the eval rows selected by `rows` (default: all)."""
        columns = self.rows.columns
        selected = np.ones(self.rows.size, bool) if rows is None else rows
        metrics, counts = {}, {}
        for task in tasks:
            if kind_of(task).ranks_catalogue:
                in_slice = selected[self.queries.rows]
                relevant = [
                    r for r, keep in zip(self.queries.relevant, in_slice, strict=True) if keep
                ]
                metrics[task.name] = task_metrics.retrieval(ranked[in_slice], relevant, self.ks)
                counts[task.name] = {"queries": int(in_slice.sum())}
                continue
            metrics[task.name], counts[task.name] = kind_of(task).offline_metrics(
                task,
                columns,
                predictions[task.name],
                selected,
                ece_bins=self.evaluation.ece_bins,
            )
        return metrics, counts

    def popularity(self) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Popularity predictions per ranking task and the popularity top-K per query."""
        predictions = {}
        for task in self.tasks:
            if not kind_of(task).has_head:
                continue
            label = LABELS[task.label]
            mask = self.train.get(label.mask) if label.mask else None
            if RANKING_MASK in self.train:
                ranking = self.train[RANKING_MASK]
                mask = ranking if mask is None else mask * ranking
            rate = baselines.item_rate(self.train["item_key"], self.train[label.name], mask)
            predictions[task.name] = rate.predict(self.rows.columns["item_key"])
        ranked = None
        if self.retrieval is not None:
            interactions = self.train["item_key"]
            if self.query_label is not None:
                interactions = interactions[self.train[self.query_label] > 0]
            top = baselines.popularity_ranking(self.catalogue_ids, interactions, max(self.ks))
            ranked = np.tile(top, (len(self.queries.rows), 1))
        return predictions, ranked

    def slices(self, predictions: dict[str, np.ndarray], ranked: np.ndarray | None) -> dict:
        """slices.<slice>.<value> = {rows, <task>: metrics} for the configured slices."""
        out: dict[str, Any] = {}
        columns = self.rows.columns
        user_counts = slices.impression_counts(self.train["user_key"])
        item_counts = slices.impression_counts(self.train["item_key"])
        for name in self.evaluation.slices:
            values = slices.assign(
                name,
                users=columns["user_key"],
                items=columns["item_key"],
                devices=columns.get("device_key"),
                user_counts=user_counts,
                item_counts=item_counts,
            )
            if values is None:
                continue
            # Retrieval queries are per user: an item-popularity tier does not describe them.
            tasks = tuple(
                t
                for t in self.tasks
                if not (kind_of(t).ranks_catalogue and name == "item_popularity")
            )
            out[name] = {}
            for value in sorted(set(values)):
                selected = values == value
                metrics, counts = self.metrics(tasks, predictions, ranked, selected)
                out[name][str(value)] = {"rows": int(selected.sum()), **metrics}
                if self.retrieval is not None and self.retrieval.name in counts:
                    out[name][str(value)]["queries"] = counts[self.retrieval.name]["queries"]
        return out


def _check_task_names(config: EvaluateConfig) -> None:
    clash = sorted({t.name for t in config.tasks} & set(RESERVED))
    if clash:
        raise ValueError(
            f"tasks: {clash} clash with the metrics.json keys {list(RESERVED)}; rename the task"
        )


def _single_task(ev: Evaluation, config: EvaluateConfig) -> dict[str, Any]:
    out = {}
    for task in config.tasks:
        _LOG.info(
            f"evaluate: training the single-task baseline for {task.name}",
            extra={"fields": {"task": task.name}},
        )
        train_dir = baselines.train_single_task(config, task, ev.run_dir)
        model = load_model(train_dir / "model", ev.transform_dir)
        rows = ev.stream(model)
        ranked = ev.ranked_by_model(model, rows) if kind_of(task).ranks_catalogue else None
        metrics, _ = ev.metrics((task,), rows.predictions, ranked)
        out.update(metrics)
    return out


def run_evaluate(config: EvaluateConfig, run_dir: pathlib.Path) -> dict[str, Any]:
    """Evaluates the run's trained model on its eval split; returns the metrics.json content."""
    _check_task_names(config)
    run_dir = pathlib.Path(run_dir)
    out_dir = run_dir / "evaluate"
    out_dir.mkdir(parents=True, exist_ok=True)
    ev = Evaluation(config.tasks, config.evaluation, run_dir)
    model = load_model(run_dir / "train" / "model", ev.transform_dir)
    _LOG.info(
        "evaluate: streaming the eval split through the model",
        extra={"fields": {"run": run_dir.name}},
    )
    rows = ev.stream(model)
    ranked = ev.ranked_by_model(model, rows) if ev.retrieval is not None else None
    metrics, counts = ev.metrics(config.tasks, rows.predictions, ranked)

    result: dict[str, Any] = dict(metrics)
    result["baselines"] = {}
    if "popularity" in config.evaluation.baselines:
        pop_predictions, pop_ranked = ev.popularity()
        result["baselines"]["popularity"] = ev.metrics(config.tasks, pop_predictions, pop_ranked)[0]
    if "single_task" in config.evaluation.baselines:
        result["baselines"]["single_task"] = _single_task(ev, config)
    _LOG.info("evaluate: slices", extra={"fields": {"slices": list(config.evaluation.slices)}})
    result["slices"] = ev.slices(rows.predictions, ranked)
    result["validation"] = read(run_dir / "train" / "summary.json").get("eval", {})
    result["split"] = {
        "test": "eval-*.tfrecord.gz: every metric above, baselines and slices",
        "validation": "validation-*.tfrecord.gz: early stopping and best-epoch restore",
        "train": "train-*.tfrecord.gz: fitting, tf.Transform analysers, popularity",
    }
    result["counts"] = {
        "eval_rows": ev.rows.size,
        "eval_users": int(np.unique(ev.rows.columns["user_key"]).size),
        "train_rows": int(ev.train["user_key"].size),
        **counts,
    }
    if ev.retrieval is not None:
        result["counts"]["catalogue_items"] = int(ev.catalogue_ids.size)
        result["counts"]["relevant_outside_catalogue"] = ev.queries.outside_catalogue
    result = task_metrics.clean(result)

    curves = {
        t.name: report_plots.task_curves(
            ev.rows.columns[LABELS[t.label].name],
            rows.predictions[t.name],
            config.evaluation.ece_bins,
        )
        for t in config.tasks
        if kind_of(t).probability
    }
    write_json(out_dir / "curves.json", curves)
    write_json(out_dir / "metrics.json", result)
    # The bless step runs next and renders the report again with its decision.
    report.render_report(
        run_dir,
        primary=primary_metrics(config.tasks, config.evaluation),
        task_order=[t.name for t in config.tasks],
    )
    return result
