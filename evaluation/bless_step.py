"""The bless step: the last blessed model re-scored, the gate's decision, the report again.

The evaluate step has written metrics.json and a report whose headline box says "not
decided yet"; this step re-scores the last blessed model on the same test split
(`mtlrec.evaluation.rescore`), decides (`mtlrec.evaluation.bless.decide`) and renders the
report with the decision, its reasons and the last blessed model's figures.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from mtlrec.evaluation import report
from mtlrec.evaluation.bless import decide, primary_metrics
from mtlrec.evaluation.config import BlessConfig
from mtlrec.evaluation.rescore import last_blessed

_LOG = logging.getLogger(__name__)


def run_bless(config: BlessConfig, run_dir: pathlib.Path, metrics: dict[str, Any]) -> dict:
    """Decides on the run's model (`metrics`: its metrics.json); returns `decide`'s result."""
    run_dir = pathlib.Path(run_dir)
    previous = last_blessed(config, run_dir)
    if previous is None:
        _LOG.info("bless: no model blessed before this one: nothing to compare with")
    else:
        _LOG.info(f"bless: {previous.reason}")
    primary = primary_metrics(config.tasks, config.evaluation)
    decision = decide(config.evaluation, metrics, previous, primary)
    report.render_report(
        run_dir,
        primary=primary,
        blessing=decision,
        task_order=[t.name for t in config.tasks],
    )
    return decision
