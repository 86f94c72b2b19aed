"""The `data.generate` section: size and seed of the embedded synthetic data set."""

from __future__ import annotations

import pydantic

from mtlrec.features.config import ConfigSection


class GenerateConfig(ConfigSection):
    """Size of the embedded synthetic data set used when data.raw_dir is not set."""

    users: int = pydantic.Field(default=1000, ge=1)
    """Number of users."""
    items: int = pydantic.Field(default=500, ge=1)
    """Number of catalogue items."""
    days: int = pydantic.Field(default=14, ge=1)
    """Days of traffic, ending at a fixed date so runs are reproducible."""
    seed: int = 1
    """Random seed: the same seed gives byte-identical files."""
