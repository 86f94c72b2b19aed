"""Base class of every configuration section, and the `features` section.

Sections are frozen pydantic models: typed, documented field by field, and strict about
unknown keys. The root document that assembles them lives in `mtlrec.config`.
"""

from __future__ import annotations

import pydantic


class ConfigSection(pydantic.BaseModel):
    """A frozen, strictly typed configuration section; unknown keys are errors."""

    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, strict=False, use_attribute_docstrings=True
    )


SHOP_FEATURES: tuple[str, ...] = (
    "user_id",
    "item_id",
    "device",
    "country",
    "age_bucket",
    "category",
    "brand",
    "price",
    "hour",
    "weekday",
    "position",
)

MOVIELENS_FEATURES: tuple[str, ...] = (
    "user_id",
    "item_id",
    "gender",
    "occupation",
    "age_bucket",
    "genres",
    "release_year",
    "hour",
    "weekday",
)


class FeaturesConfig(ConfigSection):
    """How raw columns become model inputs (SPEC §6). Names refer to `mtlrec.features.declarations`."""

    enabled: tuple[str, ...] = SHOP_FEATURES
    """Declared features fed to the model; the rest of the declarations are ignored."""
    id_frequency_threshold: int = pydantic.Field(default=1, ge=1)
    """user_id / item_id values seen fewer times in the training span go to OOV buckets."""
    id_top_k: int | None = pydantic.Field(default=None, ge=1)
    """Cap on the user_id / item_id vocabulary size (most frequent first); null = no cap."""
    id_oov_buckets: int = pydantic.Field(default=10, ge=1)
    """Hashed OOV buckets for unseen user and item ids, so they are served, not rejected."""
    categorical_frequency_threshold: int = pydantic.Field(default=1, ge=1)
    """Side-feature categories rarer than this in the training span go to OOV buckets."""
    categorical_oov_buckets: int = pydantic.Field(default=1, ge=1)
    """Hashed OOV buckets for unseen side-feature categories."""
    max_position: int = pydantic.Field(default=20, ge=1)
    """Positions at or above this share the last position bucket."""
    history_length: int = pydantic.Field(default=0, ge=0)
    """The user-history feature: the last N items the user interacted with strictly before
    each example (clicks of a click log, rows of a pre-joined table), mean-pooled with the
    item_id embedding into the user tower; requests pass them as the `history` column
    ('|'-joined, most recent first, "" = none). 0 = off."""
    serving_position: int = pydantic.Field(default=0, ge=0)
    """Position fed at serving time: the top slot, which removes position bias."""
