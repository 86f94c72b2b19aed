"""Model lineage: where an exported version came from (run, parent model, data, config).

Written into every SavedModel as `assets.extra/mtlrec_lineage.json` and into the export
step's result in the run manifest, so a served version can be traced back without the
workdir that made it: TF Serving copies `assets.extra` along with the model and ignores
files it does not know.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from typing import Any

from mtlrec.deploy.warmup import ASSETS_EXTRA

LINEAGE_FILE = "mtlrec_lineage.json"


@dataclasses.dataclass(frozen=True)
class Lineage:
    """The provenance of one run's models.

    Attributes:
      run_id: the run that trained and exported the model.
      parent: the model directory the run warm-started from; None for a cold start.
      parent_run_id: the run that trained `parent`, when it is a run of a workdir.
      dates: inclusive `dt=` partition window the run read; None when it read them all.
      split_ts: the event-time boundaries (ms) of the validation and test splits.
      config_sha256: hash of the run's effective configuration.
      input_sha256: fingerprint of the raw input files the run read.
    """

    run_id: str
    parent: str | None
    parent_run_id: str | None
    dates: tuple[str, str] | None
    split_ts: Any
    config_sha256: str
    input_sha256: str | None

    @classmethod
    def of_run(
        cls,
        run_dir: pathlib.Path,
        warm_start: Mapping[str, Any] | None,
        dates: tuple[str, str] | None,
        split_ts: Any,
        config_sha256: str,
        input_sha256: str | None,
    ) -> Lineage:
        """The lineage of the run in `run_dir`, whose train step reported `warm_start`."""
        parent = (warm_start or {}).get("source")
        return cls(
            run_id=pathlib.Path(run_dir).name,
            parent=parent,
            parent_run_id=_run_of_model(pathlib.Path(parent)) if parent else None,
            dates=tuple(dates) if dates else None,
            split_ts=split_ts,
            config_sha256=config_sha256,
            input_sha256=input_sha256,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"dates": list(self.dates) if self.dates else None}

    def write(self, saved_model_dir: pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(saved_model_dir) / ASSETS_EXTRA / LINEAGE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n")
        return path


def read_lineage(saved_model_dir: pathlib.Path) -> dict[str, Any]:
    """The lineage written into an exported (or served) version; {} for a model without one."""
    path = pathlib.Path(saved_model_dir) / ASSETS_EXTRA / LINEAGE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _run_of_model(model_dir: pathlib.Path) -> str | None:
    """`<workdir>/runs/<run_id>/train/model` -> run_id; None for a model kept elsewhere."""
    parts = model_dir.parts
    if len(parts) >= 4 and parts[-2:] == ("train", "model") and parts[-4] == "runs":
        return parts[-3]
    return None
