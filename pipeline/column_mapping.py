"""The user's column names and units, applied to a contract table (`data.columns`, units).

A table is read under the file's column names and parsed in the contract's units: numbers
of a timestamp column in seconds are scaled to milliseconds, a duration in milliseconds to
seconds. ISO-8601 timestamps need no unit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from mtlrec.features import schema
from mtlrec.features.schema import ColumnType
from mtlrec.pipeline.config import DataConfig

MS_PER = {"s": 1000.0, "ms": 1.0, "us": 0.001}
"""Milliseconds per unit of a numeric timestamp (`data.ts_unit`)."""
S_PER = {"min": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000_001}
"""Seconds per unit of a duration (`data.units`); contract durations are in seconds."""


def in_contract_units(table: schema.Table, data: DataConfig) -> schema.Table:
    """The contract with each column's scale from `data.ts_unit` and `data.units`.

    Raises:
      ValueError: `data.units` names a column the table has that is not a duration.
    """
    columns = []
    for column in table.columns:
        scale = 1.0
        if column.type is ColumnType.TIMESTAMP and data.ts_unit is not None:
            scale = MS_PER[data.ts_unit]
        if column.name in data.units:
            if column.type is not ColumnType.FLOAT or not column.name.endswith("_s"):
                raise ValueError(
                    f"data.units.{column.name}: only durations in seconds (columns ending in "
                    "_s, e.g. dwell_s) take a unit; timestamps use data.ts_unit"
                )
            scale = S_PER[data.units[column.name]]
        columns.append(dataclasses.replace(column, scale=scale))
    return dataclasses.replace(table, columns=tuple(columns))


def in_file_names(table: schema.Table, mapping: Mapping[str, str]) -> schema.Table:
    """The same contract under the file's column names (`mapping`: contract -> file name);
    names of other tables' columns are ignored, so one mapping serves every table."""
    return dataclasses.replace(
        table,
        key=mapping.get(table.key, table.key),
        columns=tuple(
            dataclasses.replace(c, name=mapping.get(c.name, c.name)) for c in table.columns
        ),
    )
