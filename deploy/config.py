"""Configuration section owned by the export: `export` (SPEC §8)."""

from __future__ import annotations

import pydantic

from mtlrec.features.config import ConfigSection


class ExportConfig(ConfigSection):
    """Where and how the SavedModels for TF Serving are written."""

    export_root: str | None = None
    """Directory holding <model_name>/<version>/; null = <workdir>/serving."""
    model_prefix: str = "mtlrec"
    """Models are named <prefix>_ranker, <prefix>_retriever and <prefix>_recommender."""
    top_k: int = pydantic.Field(default=100, ge=1)
    """Items returned by the retriever and the recommender."""
    retrieve_n: int = pydantic.Field(default=200, ge=1)
    """Recommender: candidates retrieved before ranking (at least top_k)."""
    score_weights: dict[str, float] = {"click": 1.0, "purchase": 2.0}
    """Blended score = sum of weight * task output, over task names (binary and regression)."""
    warmup_requests: int = pydantic.Field(default=10, ge=0)
    """Warm-up requests written to assets.extra from evaluation rows."""

    @pydantic.model_validator(mode="after")
    def _retrieve_at_least_top_k(self) -> ExportConfig:
        if self.retrieve_n < self.top_k:
            raise ValueError(
                f"export.retrieve_n ({self.retrieve_n}) must be >= export.top_k ({self.top_k})"
            )
        return self
