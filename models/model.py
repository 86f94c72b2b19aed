"""The TFRS multi-task model: shared towers, sharing block, per-task heads and losses.

`compute_loss` only weighs and sums the task losses (`mtlrec.models.weighting`); the task layers
(`mtlrec.models.tasks`) compute them; the towers (`mtlrec.models.towers`) are the same objects for every
task, so the user and item id embedding tables are shared variables.
"""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mtlrec.features.config import FeaturesConfig
from mtlrec.features.declarations import (
    RANKING_MASK,
    FeatureSet,
    Kind,
    Side,
    feature_set,
)
from mtlrec.models.config import ModelConfig, TaskConfig
from mtlrec.models.data import vocab_sizes_from_tft
from mtlrec.models.heads import TaskHead
from mtlrec.models.sharing import build_sharing
from mtlrec.models.sharing.mlp import dense_regularizer
from mtlrec.models.tasks import kind_of, validate_tasks
from mtlrec.models.tasks.base import TaskInputs
from mtlrec.models.towers import Tower, dummy_features, embedding_input_dim
from mtlrec.models.weighting import build_weighting

SPEC_FILE = "model_spec.json"
WEIGHTS_PREFIX = "weights/model"


class MultiTaskModel(tfrs.Model):
    """Retrieval and ranking tasks over one user tower and one item tower."""

    def __init__(
        self,
        feature_set: FeatureSet,
        tasks: tuple[TaskConfig, ...],
        model_cfg: ModelConfig,
        vocab_sizes: dict[str, int],
        *,
        serving_position: int,
    ) -> None:
        super().__init__()
        validate_tasks(tasks)
        self.feature_set = feature_set
        self.task_configs = {t.name: t for t in tasks}
        self.task_kinds = {t.name: kind_of(t) for t in tasks}
        self.serving_position = serving_position
        self.candidate_tower = Tower(
            feature_set, Side.CANDIDATE, model_cfg, vocab_sizes, name="candidate"
        )
        self.query_tower = Tower(
            feature_set,
            Side.QUERY,
            model_cfg,
            vocab_sizes,
            name="query",
            shared=self.candidate_tower.embeddings,
        )
        self.ranking_names = tuple(t.name for t in tasks if self.task_kinds[t.name].has_head)
        self.sharing = build_sharing(model_cfg, self.ranking_names) if self.ranking_names else None
        self.cross = [
            tfrs.layers.dcn.Cross(kernel_regularizer=dense_regularizer(model_cfg.l2_dense))
            for _ in range(model_cfg.cross_layers)
        ]
        self.head_dot = model_cfg.head_dot
        positions = self._position_buckets(feature_set)
        id_bias_rows = (
            {
                f.name: embedding_input_dim(feature_set, f, vocab_sizes)
                for f in feature_set.features
                if f.kind is Kind.ID and not f.multivalent
            }
            if model_cfg.id_bias
            else {}
        )
        self.heads = {
            name: TaskHead(
                model_cfg.head_units,
                dropout=model_cfg.dropout,
                num_positions=positions if self.task_kinds[name].position_bias else None,
                id_bias_rows=id_bias_rows,
                l2=model_cfg.l2_dense,
                name=f"{name}_head",
            )
            for name in self.ranking_names
        }
        self.task_layers = {t.name: self.task_kinds[t.name].build_layer(t) for t in tasks}
        self.weighting = build_weighting(model_cfg.weighting, {t.name: t.weight for t in tasks})
        # Everything `load_model` needs to rebuild this model (written as model_spec.json);
        # kept as text so Keras does not wrap it into tracked containers.
        self._spec_json = json.dumps(
            {
                "features": feature_set.config.model_dump(mode="json"),
                "labels": [label.name for label in feature_set.labels],
                "tasks": [t.model_dump(mode="json") for t in tasks],
                "model": model_cfg.model_dump(mode="json"),
                "vocab_sizes": dict(vocab_sizes),
                "serving_position": serving_position,
            },
            indent=2,
            sort_keys=True,
        )

    @property
    def spec(self) -> dict:
        """The configuration and vocabulary sizes this model was built from."""
        return json.loads(self._spec_json)

    @staticmethod
    def _position_buckets(fs: FeatureSet) -> int | None:
        """Position slots of the bias term (0..max_position), or None without `position`."""
        bias = [f for f in fs.by_side(Side.BIAS) if f.kind is Kind.POSITION]
        return fs.config.max_position + 1 if bias else None

    # ----- representations ------------------------------------------------------------
    def query_embedding(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """[B, d] user (query) tower output."""
        return self.query_tower(features, training=False)

    def candidate_embedding(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """[B, d] item (candidate) tower output."""
        return self.candidate_tower(features, training=False)

    @property
    def id_embedding_tables(self) -> list[tf.Variable]:
        """The id-keyed tables, the ones `training.l2_embedding` penalises: the shared user_id
        and item_id embeddings, then the heads' per-id biases (`model.id_bias`)."""
        towers = self.query_tower.id_embedding_tables + self.candidate_tower.id_embedding_tables
        return towers + [t for head in self.heads.values() for t in head.id_bias_tables]

    def vocabulary_tables(self) -> list[tuple[str, tf.Variable]]:
        """(vocabulary name, table) of every table whose rows are vocabulary entries: the
        towers' id and categorical embeddings, the heads' per-id biases, the retrieval item
        bias. A warm start carries their rows over by token (`mtlrec.models.warm_start`)."""
        tables = [
            pair for tower in (self.query_tower, self.candidate_tower)
            for pair in tower.vocabulary_tables
        ]  # fmt: skip
        for head in self.heads.values():
            for feature, layer in head.id_biases.items():
                tables.append((self.feature_set.get(feature).vocab_name, layer.embeddings))
        return tables

    def _positions(self, features: dict[str, tf.Tensor], batch: tf.Tensor) -> tf.Tensor:
        if "position" in features:
            return features["position"]
        return tf.fill([batch], tf.constant(self.serving_position, tf.int64))

    def _logits(
        self,
        features: dict[str, tf.Tensor],
        query: tf.Tensor,
        candidate: tf.Tensor,
        names: tuple[str, ...],
        training: bool,
    ) -> dict[str, tf.Tensor]:
        """Head outputs (logit, or prediction for regression) of the named ranking tasks."""
        if not names:
            return {}
        shared = self.sharing(self.pair_representation(query, candidate), training=training)
        if self.head_dot:
            dot = tf.reduce_sum(query * candidate, axis=1, keepdims=True)
            shared = {n: tf.concat([shared[n], dot], axis=1) for n in names}
        position = self._positions(features, tf.shape(query)[0])
        ids = {name: features[name] for head in self.heads.values() for name in head.id_biases}
        return {n: self.heads[n](shared[n], position, ids, training=training) for n in names}

    def pair_representation(self, query: tf.Tensor, candidate: tf.Tensor) -> tf.Tensor:
        """[B, 3d] (user, item, user * item), through the DCN-v2 cross layers if any: the
        input of the sharing block."""
        pair = tf.concat([query, candidate, query * candidate], axis=1)
        crossed = pair
        for layer in self.cross:
            crossed = layer(pair, crossed)
        return crossed

    def _needed_heads(self, names: tuple[str, ...]) -> tuple[str, ...]:
        needed = {h for n in names for h in self.task_kinds[n].heads_read(self.task_configs[n])}
        return tuple(n for n in self.ranking_names if n in needed)

    # ----- losses ---------------------------------------------------------------------
    def task_losses(
        self,
        features: dict[str, tf.Tensor],
        names: tuple[str, ...] | None = None,
        *,
        training: bool = False,
        compute_metrics: bool = False,
        topk: tfrs.metrics.FactorizedTopK | None = None,
    ) -> dict[str, tf.Tensor]:
        """Unweighted scalar loss of each named task (all tasks by default)."""
        names = tuple(self.task_configs) if names is None else tuple(names)
        unknown = [n for n in names if n not in self.task_configs]
        if unknown:
            raise ValueError(
                f"unknown task(s) {unknown}; declared tasks: {list(self.task_configs)}"
            )
        query = self.query_tower(features, training=training)
        candidate = self.candidate_tower(features, training=training)
        logits = self._logits(features, query, candidate, self._needed_heads(names), training)
        inputs = TaskInputs(
            features=features,
            query=query,
            candidate=candidate,
            heads=logits,
            # Retrieval-only examples (orphan clicks) carry no impression to rank.
            ranking=features.get(RANKING_MASK),
            compute_metrics=compute_metrics,
            topk=topk,
        )
        return {
            name: self.task_kinds[name].loss(
                self.task_layers[name], self.task_configs[name], inputs
            )
            for name in names
        }

    def compute_loss(self, inputs: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.weighting(self.task_losses(inputs, training=training))

    # ----- predictions ----------------------------------------------------------------
    def predict_tasks(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> dict[str, tf.Tensor]:
        """{task: [B]} as each task's kind predicts: binary -> probability (ESMM child:
        p_parent * p_cond), regression -> prediction in label space, retrieval ->
        dot(query, candidate)."""
        query = self.query_tower(features, training=training)
        candidate = self.candidate_tower(features, training=training)
        logits = self._logits(features, query, candidate, self.ranking_names, training)
        inputs = TaskInputs(features=features, query=query, candidate=candidate, heads=logits)
        return {
            name: self.task_kinds[name].predict(cfg, inputs)
            for name, cfg in self.task_configs.items()
        }

    # ----- variable groups (alternating training) --------------------------------------
    def own_variables(self, task_name: str) -> list[tf.Variable]:
        """Variables only `task_name` uses: its head, its gates/experts, its loss weight."""
        own = list(self.weighting.task_variables(task_name))
        if task_name in self.heads:
            own += self.heads[task_name].trainable_variables
            own += self.sharing.task_variables(task_name)
        return own

    def variables_for_task(self, task_name: str) -> list[tf.Variable]:
        """The shared variables plus `task_name`'s own: what a step on that task may change.

        Other tasks' heads are excluded even where the loss reaches them (an ESMM child's
        loss goes through its parent's head): a step on one task leaves the others' heads
        untouched.
        """
        others = {
            v.ref() for t in self.task_configs if t != task_name for v in self.own_variables(t)
        }
        return [v for v in self.trainable_variables if v.ref() not in others]


def build_model(
    feature_set: FeatureSet,
    tasks: tuple[TaskConfig, ...],
    model_cfg: ModelConfig,
    vocab_sizes: dict[str, int],
    *,
    serving_position: int,
) -> MultiTaskModel:
    """A built (variables created) multi-task model; call inside `strategy.scope()`."""
    model = MultiTaskModel(
        feature_set, tuple(tasks), model_cfg, vocab_sizes, serving_position=serving_position
    )
    model.predict_tasks(dummy_features(feature_set))
    return model


def save_model(model: MultiTaskModel, model_dir: str | pathlib.Path) -> None:
    """Writes the weights and `model_spec.json` (everything `load_model` needs)."""
    model_dir = pathlib.Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(model_dir / WEIGHTS_PREFIX))
    (model_dir / SPEC_FILE).write_text(model._spec_json)


def load_model(
    model_dir: str | pathlib.Path, tft_output_dir: str | pathlib.Path | None
) -> MultiTaskModel:
    """Rebuilds the model from `model_spec.json` and loads its weights.

    Vocabulary sizes are re-read from the tf.Transform output and must match the ones the
    model was trained with (`tft_output_dir=None` trusts the spec).

    Raises:
      ValueError: missing spec, or vocabularies that differ from training.
    """
    model_dir = pathlib.Path(model_dir)
    spec_path = model_dir / SPEC_FILE
    if not spec_path.exists():
        raise ValueError(f"{spec_path} not found: {model_dir} is not a trained model directory")
    spec = json.loads(spec_path.read_text())
    fs = feature_set(FeaturesConfig.model_validate(spec["features"]), tuple(spec["labels"]))
    vocab_sizes = {k: int(v) for k, v in spec["vocab_sizes"].items()}
    if tft_output_dir is not None:
        current = vocab_sizes_from_tft(tft_output_dir, fs)
        if current != vocab_sizes:
            raise ValueError(
                f"vocabulary sizes of {tft_output_dir} {current} differ from the ones the model "
                f"in {model_dir} was trained with {vocab_sizes}: use the run's own transform_fn"
            )
    model = build_model(
        fs,
        tuple(TaskConfig.model_validate(t) for t in spec["tasks"]),
        ModelConfig.model_validate(spec["model"]),
        vocab_sizes,
        serving_position=int(spec["serving_position"]),
    )
    tf.train.Checkpoint(model=model).read(
        str(model_dir / WEIGHTS_PREFIX)
    ).assert_existing_objects_matched()
    return model
