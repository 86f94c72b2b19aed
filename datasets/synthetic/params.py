"""The knobs of the synthetic world: how strong and of what shape its signals are.

The defaults are the shop `mtlrec generate` has always drawn (byte-identical files). The
other values give worlds the model was not tuned on: a benchmark varies them.
"""

from __future__ import annotations

import dataclasses

DEFAULT_LATENT_DIM = 8


@dataclasses.dataclass(frozen=True)
class WorldParams:
    latent_dim: int = DEFAULT_LATENT_DIM
    """Dimension of the user and item factors. Factors are scaled by (8 / dim) ** 0.25, so
    the variance of u·v, the click affinity, does not grow with the dimension."""
    affinity: float = 1.0
    """Weight of u·v in the click logit: how much the user decides a click."""
    popularity_skew: float = 1.05
    """Zipf exponent of the items' popularity (slates draw from it)."""
    position_decay: float = 0.7
    """p(click) is multiplied by (1 + position) ** -position_decay."""
    task_correlation: float = 0.6
    """Weight of an item's click factors in its purchase factors (plus independent noise):
    0 makes purchase affinity independent of click affinity."""

    def __post_init__(self) -> None:
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        for name in ("affinity", "popularity_skew", "position_decay", "task_correlation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


DEFAULT_WORLD = WorldParams()
