"""What the validate and preprocess steps count, and which counts stop a run (SPEC §11, §13).

The Beam jobs emit count dicts that `mtlrec.pipeline.beam_io.WriteCounts` sums; these functions
shape the totals into each step's `counts.json` and raise the errors that end the step.
"""

from __future__ import annotations

import pathlib
from typing import Any

from mtlrec.features import schema
from mtlrec.pipeline.config import DataConfig

PREPROCESS_COUNT_KEYS = (
    "impressions",
    "clicks_joined",
    "purchases_attributed",
    "orphan_clicks",
    "orphan_purchases",
    "train_examples",
    "validation_examples",
    "eval_examples",
    "clicked_impressions",
    "purchased_impressions",
    "impressions_deduplicated",
    "retrieval_only_examples",
)


class BadInputError(ValueError):
    """More rows were rejected than `data.max_bad_fraction` allows."""


def validate_counts(
    totals: dict[str, Any], primary: str, dead_letter: pathlib.Path
) -> dict[str, Any]:
    """The validate step's counts from its job's totals; `primary` is events or interactions."""
    events = totals.get(primary, {})
    accepted = events.get("accepted", {})
    counts: dict[str, Any] = {
        "events_read": events.get("read", 0),
        "duplicates": events.get("duplicates", 0),
        "rejected": {r: events.get("rejected", {}).get(r, 0) for r in schema.REJECT_REASONS},
        "dead_letter": str(dead_letter),
    }
    if primary == "events":
        counts["accepted"] = {e: accepted.get(e, 0) for e in schema.EVENT_TYPES}
    else:
        counts["accepted"] = {"interactions": accepted.get("rows", 0)}
        non_null = events.get("non_null", {})
        counts["columns"] = sorted(c for c, n in non_null.items() if n)
    bad_files = {
        path: reason
        for table in totals.values()
        if isinstance(table, dict)
        for path, reason in table.get("bad_files", {}).items()
    }
    counts["bad_files"] = len(bad_files)
    counts["bad_file_reasons"] = dict(sorted(bad_files.items()))
    for side in ("items", "users"):
        if side in totals:
            side_counts = totals[side]
            counts[f"{side}_read"] = side_counts.get("read", 0)
            rejected = side_counts.get("rejected", {})
            counts[f"{side}_rejected"] = sum(rejected.values())
            counts[f"{side}_rejected_by_reason"] = {
                r: rejected.get(r, 0) for r in schema.REJECT_REASONS
            }
            counts[f"{side}_duplicates"] = side_counts.get("duplicates", 0)
    return counts


class BadFilesError(ValueError):
    """Every file of a required table, or more than `data.max_bad_files_fraction` of a
    table's files, is empty or unreadable."""


def check_bad_files(
    totals: dict[str, Any], files: dict[str, list[str]], required: set[str], limit: float = 1.0
) -> list[str]:
    """One warning line per bad file (SPEC §11); raises when no file of a required table
    could be read, or when more than `limit` of any table's files are bad.

    Args:
      totals: the validate job's totals (`<table>.bad_files`: path -> reason).
      files: every file read, by table.
      required: the tables the run cannot go without (events, or the pre-joined table).
      limit: the largest share of a table's files that may be bad.
    """
    warnings = []
    for table, paths in files.items():
        bad = totals.get(table, {}).get("bad_files", {})
        listed = "; ".join(f"{p} ({bad[p]})" for p in sorted(bad))
        if table in required and paths and set(paths) <= set(bad):
            raise BadFilesError(f"no readable {table!r} file: {listed}")
        if paths and len(bad) / len(paths) > limit:
            raise BadFilesError(
                f"{len(bad)} of {len(paths)} {table!r} files are bad, more than "
                f"data.max_bad_files_fraction={limit}: {listed}"
            )
        warnings += [f"skipped bad {table} file {p}: {bad[p]}" for p in sorted(bad)]
    return warnings


def check_bad_fraction(counts: dict[str, Any], limit: float) -> None:
    """Stops the job when any table's rejected / read is above `limit` (SPEC §11)."""
    tables = {"events": (counts["events_read"], counts["rejected"])}
    for side in ("items", "users"):
        if f"{side}_read" in counts:
            tables[side] = (counts[f"{side}_read"], counts[f"{side}_rejected_by_reason"])
    for table, (read, rejected) in tables.items():
        bad = sum(rejected.values())
        fraction = bad / read if read else 0.0
        if fraction > limit:
            by_reason = ", ".join(f"{r}={n}" for r, n in rejected.items() if n)
            raise BadInputError(
                f"{bad} of {read} {table} rejected ({by_reason}): fraction {fraction:.4f} is "
                f"above data.max_bad_fraction={limit}; inspect {counts['dead_letter']}, fix the "
                f"input or raise data.max_bad_fraction"
            )


def preprocess_counts(totals: dict[str, Any]) -> dict[str, Any]:
    """The preprocess step's counts from its job's totals."""
    return {key: totals.get(key, 0) for key in PREPROCESS_COUNT_KEYS} | {
        "split_ts": totals["split_ts"],
        "positives": totals.get("positives", {}),
    }


def check_impressions(validated: dict[str, Any], validate_dir: pathlib.Path) -> None:
    """Raises ValueError when validation accepted no impression (nothing to train on)."""
    accepted = validated.get("accepted", {})
    if not (accepted.get("impression") or accepted.get("interactions")):
        raise ValueError(
            f"{validate_dir}: no accepted impressions, nothing to train on; check the "
            f"dead-letter output in {validate_dir / 'dead_letter'}"
        )


def check_preprocessed(
    data: DataConfig, validated: dict[str, Any], counts: dict[str, Any], validate_dir: pathlib.Path
) -> None:
    """The checks of the preprocess step, for counts of `run_validate_and_preprocess`."""
    check_impressions(validated, validate_dir)
    check_training_examples(counts, data)


def check_training_examples(counts: dict[str, Any], data: DataConfig) -> None:
    """Raises ValueError when the split left nothing to train on (analysers saw no rows)."""
    if counts["train_examples"] == 0:
        setting = (
            f"data.split_ts={data.split_ts!r}"
            if data.split_ts is not None
            else f"data.eval_fraction={data.eval_fraction}"
        )
        raise ValueError(
            f"{setting} puts every one of {counts['eval_examples']} examples in the evaluation "
            f"split (split_ts={counts['split_ts']} ms); choose a later data.split_ts"
        )
    if counts["validation_examples"] == 0:
        raise ValueError(
            f"data.validation_fraction={data.validation_fraction} leaves the validation split "
            f"empty ({counts['train_examples']} train examples): raise it or add data"
        )
