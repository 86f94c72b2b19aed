"""Which raw files the validate step reads, per table, with their contract and file names.

Kept apart from the Beam entry points so `mtlrec inspect` (and the CLI that imports it)
finds the same files without loading TensorFlow.
"""

from __future__ import annotations

import pathlib

from mtlrec.features import readers, schema
from mtlrec.pipeline import interactions
from mtlrec.pipeline.column_mapping import in_contract_units, in_file_names
from mtlrec.pipeline.config import JobConfig
from mtlrec.pipeline.validate_job import TableSource

RAW_TABLES = ("events", "items", "users")


def table_sources(config: JobConfig, raw_dir: pathlib.Path) -> dict[str, TableSource]:
    """The tables to validate: events (+ items, users) or the pre-joined interactions."""
    data = config.data
    if data.interactions is not None:
        contract = in_contract_units(interactions.table(data.interactions.table), data)
        in_files = in_file_names(
            interactions.file_table(contract, dict(data.interactions.columns)), data.columns
        )
        files = interactions.discover(raw_dir, contract.name)
        return {contract.name: TableSource(files, contract, in_files)}
    dates = data.partition_window()
    sources = {}
    for name in RAW_TABLES:
        table = in_contract_units(schema.TABLES[name], data)
        found = readers.discover(raw_dir, name, dates if name == "events" else None)
        if found:
            sources[name] = TableSource(found, table, in_file_names(table, data.columns))
    return sources
