"""The `data.generate` section: size and seed of the embedded synthetic data set."""

from __future__ import annotations

import pydantic

from mtlrec.datasets.synthetic.params import WorldParams
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
    latent_dim: int = pydantic.Field(default=8, ge=1)
    """Dimension of the user and item factors (the variance of u·v does not grow with it)."""
    affinity: float = pydantic.Field(default=1.0, ge=0.0)
    """Weight of the user x item affinity in the click logit."""
    popularity_skew: float = pydantic.Field(default=1.05, ge=0.0)
    """Zipf exponent of item popularity."""
    position_decay: float = pydantic.Field(default=0.7, ge=0.0)
    """Position bias: p(click) x (1 + position) ** -position_decay."""
    task_correlation: float = pydantic.Field(default=0.6, ge=0.0)
    """Weight of the click factors in the purchase factors (0: independent tasks)."""

    def world(self) -> WorldParams:
        """The world knobs as the generator takes them."""
        return WorldParams(
            latent_dim=self.latent_dim,
            affinity=self.affinity,
            popularity_skew=self.popularity_skew,
            position_decay=self.position_decay,
            task_correlation=self.task_correlation,
        )
