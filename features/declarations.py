"""Feature declarations: the one place that names every model input and label (SPEC §6).

The join (pipeline) produces *joined examples* with the columns of `JOINED_COLUMNS`;
`preprocessing_fn` turns them into the transformed features declared here; the model
builds its towers from the same declarations. Vocabulary sizes are never typed in:
they are read from the tf.Transform output by name (`vocab_name`).
"""

from __future__ import annotations

import dataclasses
import enum

from mtlrec.features.config import FeaturesConfig


class Kind(enum.Enum):
    ID = "id"  # user_id / item_id: vocabulary + hashed OOV buckets, shared embedding table
    CATEGORICAL = "categorical"  # side feature: vocabulary + OOV buckets, embedding
    NUMERIC = "numeric"  # float, normalised (z-score, optionally after log1p)
    TIME = "time"  # integer bucket derived from ts (hour, weekday)
    POSITION = "position"  # training-only slot, clipped; fixed at serving time


class Side(enum.Enum):
    """Which tower consumes the feature."""

    QUERY = "query"  # user tower (user and request context)
    CANDIDATE = "candidate"  # item tower
    BIAS = "bias"  # position: only a shallow bias term, never the towers


class Dtype(enum.Enum):
    STRING = "string"
    INT = "int64"
    FLOAT = "float32"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One transformed model input.

    Attributes:
      name: transformed feature name (also the tf.Transform vocabulary name).
      source: joined-example column it is computed from.
      kind: how it is transformed.
      side: which tower consumes it.
      log1p: numeric only: apply log1p before the z-score (heavy tails such as price).
      num_buckets: time/position: number of integer buckets.
      multivalent: categorical only: the raw value is a '|'-separated list.
      vocabulary: the feature whose vocabulary (and embedding table) it reuses; None = its
        own. The user history reads `item_id`'s, so an item maps to the same row anywhere.
    """

    name: str
    source: str
    kind: Kind
    side: Side
    log1p: bool = False
    num_buckets: int | None = None
    multivalent: bool = False
    vocabulary: str | None = None

    @property
    def vocab_name(self) -> str | None:
        if self.kind not in (Kind.ID, Kind.CATEGORICAL):
            return None
        return self.vocabulary or self.name


@dataclasses.dataclass(frozen=True)
class Label:
    """A training label. `mask` names the 0/1 feature that says where the label is defined."""

    name: str
    source: str
    binary: bool
    log1p: bool = False
    mask: str | None = None


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("user_id", "user_id", Kind.ID, Side.QUERY),
        Feature("item_id", "item_id", Kind.ID, Side.CANDIDATE),
        Feature("device", "device", Kind.CATEGORICAL, Side.QUERY),
        Feature("country", "country", Kind.CATEGORICAL, Side.QUERY),
        Feature("age_bucket", "age_bucket", Kind.CATEGORICAL, Side.QUERY),
        Feature("gender", "gender", Kind.CATEGORICAL, Side.QUERY),
        Feature("occupation", "occupation", Kind.CATEGORICAL, Side.QUERY),
        Feature("category", "category", Kind.CATEGORICAL, Side.CANDIDATE),
        Feature("brand", "brand", Kind.CATEGORICAL, Side.CANDIDATE),
        Feature("genres", "genres", Kind.CATEGORICAL, Side.CANDIDATE, multivalent=True),
        Feature("price", "price", Kind.NUMERIC, Side.CANDIDATE, log1p=True),
        Feature("release_year", "release_year", Kind.NUMERIC, Side.CANDIDATE),
        Feature("hour", "ts", Kind.TIME, Side.QUERY, num_buckets=24),
        Feature("weekday", "ts", Kind.TIME, Side.QUERY, num_buckets=7),
        Feature("position", "position", Kind.POSITION, Side.BIAS),
    )
}

MULTIVALENT_SEPARATOR = "|"
"""Between the values of a multivalent raw column (`genres`, `history`)."""

HISTORY = "history"
"""The user's recent items (`features.history_length`): enabled by that key, not by
`features.enabled`; computed by the pipeline (`mtlrec.pipeline.history`)."""
HISTORY_FEATURE = Feature(
    HISTORY, HISTORY, Kind.ID, Side.QUERY, multivalent=True, vocabulary="item_id"
)

CLICK = "click"
"""The click label: retrieval's positive pairs and the rows of `auc_on_clicks`."""

LABELS: dict[str, Label] = {
    label.name: label
    for label in (
        Label("click", "click", binary=True),
        Label("purchase", "purchase", binary=True),
        Label("dwell", "dwell_s", binary=False, log1p=True, mask="dwell_mask"),
        Label("rating", "rating", binary=False),
    )
}

# Columns of a joined example (output of the Beam join, input of preprocessing_fn).
# Label columns a data set lacks are absent; `has_dwell` is 1 where dwell_s is defined;
# `impression` is 0 on retrieval-only examples.
JOINED_COLUMNS: dict[str, Dtype] = {
    "user_id": Dtype.STRING,
    "item_id": Dtype.STRING,
    "ts": Dtype.INT,
    "request_id": Dtype.STRING,
    "position": Dtype.INT,
    "device": Dtype.STRING,
    "country": Dtype.STRING,
    "age_bucket": Dtype.STRING,
    "gender": Dtype.STRING,
    "occupation": Dtype.STRING,
    "category": Dtype.STRING,
    "brand": Dtype.STRING,
    "genres": Dtype.STRING,
    "price": Dtype.FLOAT,
    "release_year": Dtype.FLOAT,
    "click": Dtype.INT,
    "purchase": Dtype.INT,
    "dwell_s": Dtype.FLOAT,
    "has_dwell": Dtype.INT,
    "impression": Dtype.INT,
    "rating": Dtype.FLOAT,
    HISTORY: Dtype.STRING,
}

# 1 on examples of a shown impression, 0 on retrieval-only examples (orphan clicks, SPEC §5):
# the ranking tasks weigh their rows by it. Only present when orphan clicks are examples
# (`data.orphan_clicks_to_retrieval`).
RANKING_MASK = "ranking_mask"

# The example's raw ts after the transform: evaluation orders by it, and the preprocess job
# splits the transformed examples into train and eval by it.
EVENT_TS = "event_ts"
# Raw values passed through untransformed, for evaluation (GAUC per user, slices).
PASSTHROUGH: dict[str, str] = {
    "user_key": "user_id",
    "item_key": "item_id",
    "device_key": "device",
    EVENT_TS: "ts",
}

# Per-example log of the item's sampling probability in the training span (logQ correction).
ITEM_LOG_Q = "item_log_q"


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """The enabled features and labels of one run, plus the vocabulary settings."""

    features: tuple[Feature, ...]
    labels: tuple[Label, ...]
    config: FeaturesConfig

    def by_side(self, side: Side) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.side is side)

    def get(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"feature {name!r} is not enabled; enabled: {self.names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def oov_buckets(self, feature: Feature) -> int:
        if feature.kind is Kind.ID:
            return self.config.id_oov_buckets
        return self.config.categorical_oov_buckets

    @property
    def raw_sources(self) -> tuple[str, ...]:
        """Joined-example columns the enabled features read (labels excluded)."""
        return tuple(dict.fromkeys(f.source for f in self.features))


def feature_set(config: FeaturesConfig, labels: tuple[str, ...]) -> FeatureSet:
    """Resolves the enabled feature names and the task labels against the declarations.

    Raises:
      ValueError: a name is not declared; the message lists the declared names.
    """
    if HISTORY in config.enabled:
        raise ValueError(
            f"features.enabled: {HISTORY!r} is turned on by features.history_length, not listed"
        )
    unknown = [n for n in config.enabled if n not in FEATURES]
    if unknown:
        raise ValueError(
            f"features.enabled: unknown feature(s) {unknown}; declared: {sorted(FEATURES)}"
        )
    unknown_labels = [n for n in labels if n not in LABELS]
    if unknown_labels:
        raise ValueError(f"tasks: unknown label(s) {unknown_labels}; declared: {sorted(LABELS)}")
    for required in ("user_id", "item_id"):
        if required not in config.enabled:
            raise ValueError(f"features.enabled must include {required!r}")
    history = (HISTORY_FEATURE,) if config.history_length else ()
    return FeatureSet(
        features=(*(FEATURES[n] for n in config.enabled), *history),
        labels=tuple(LABELS[n] for n in dict.fromkeys(labels)),
        config=config,
    )
