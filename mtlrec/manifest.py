"""The run manifest (SPEC §13): what a run read, produced, measured and decided."""

from __future__ import annotations

from typing import Any

from mtlrec.features.json_files import read, write_json

MANIFEST = "manifest.json"
STEP_NAMES: tuple[str, ...] = (
    "validate",
    "preprocess",
    "train",
    "evaluate",
    "bless",
    "export",
    "push",
)
"""The steps of a run in their order, as the manifest records them (`mtlrec.steps` runs them)."""

__all__ = ["MANIFEST", "STEP_NAMES", "invariant_holds", "read", "write_json"]


def invariant_holds(counts: dict[str, Any]) -> bool:
    """events_read = duplicates + Σ rejected + accepted impressions + clicks + purchases."""
    accepted = (
        counts["impressions"]
        + counts["clicks_joined"]
        + counts["orphan_clicks"]
        + counts["purchases_attributed"]
        + counts["orphan_purchases"]
    )
    rejected = sum(counts["rejected"].values())
    return counts["events_read"] == counts["duplicates"] + rejected + accepted
