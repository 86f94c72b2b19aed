"""The raw log contract (SPEC §4): tables, columns, types and which event types need them.

Everything that reads, writes or validates raw logs takes its column names from here.
"""

from __future__ import annotations

import dataclasses
import enum


class ColumnType(enum.Enum):
    """Logical type of a raw column; readers coerce file values to the matching Python type."""

    STRING = "string"
    INT = "int64"
    FLOAT = "float64"
    TIMESTAMP = "timestamp"  # int64 ms since epoch, or an ISO-8601 string (UTC)


class EventType(enum.StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    PURCHASE = "purchase"


@dataclasses.dataclass(frozen=True)
class Column:
    """One raw column.

    Attributes:
      name: column name in the files.
      type: logical type.
      required_for: event types for which the value must be present (all tables but
        `events` use `required=True` instead).
      required: the column must be present in every row of its table.
      non_negative: numeric values must be finite and >= 0.
      scale: numbers in the file times `scale` are in the contract's unit (a timestamp in
        seconds has scale 1000, a duration in milliseconds 0.001); ISO-8601 text is not scaled.
    """

    name: str
    type: ColumnType
    required: bool = False
    required_for: frozenset[EventType] = frozenset()
    non_negative: bool = False
    scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str
    required: bool

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}; columns: {self.column_names}")


_IMP_CLICK = frozenset({EventType.IMPRESSION, EventType.CLICK})

EVENTS = Table(
    name="events",
    key="event_id",
    required=True,
    columns=(
        Column("event_id", ColumnType.STRING, required=True),
        Column("ts", ColumnType.TIMESTAMP, required=True),
        Column("user_id", ColumnType.STRING, required=True),
        Column("item_id", ColumnType.STRING, required=True),
        Column("event_type", ColumnType.STRING, required=True),
        Column("request_id", ColumnType.STRING, required_for=_IMP_CLICK),
        Column(
            "position",
            ColumnType.INT,
            required_for=frozenset({EventType.IMPRESSION}),
            non_negative=True,
        ),
        Column("dwell_s", ColumnType.FLOAT, non_negative=True),
        Column("device", ColumnType.STRING),
        Column("revenue", ColumnType.FLOAT, non_negative=True),
    ),
)

ITEMS = Table(
    name="items",
    key="item_id",
    required=False,
    columns=(
        Column("item_id", ColumnType.STRING, required=True),
        Column("category", ColumnType.STRING),
        Column("brand", ColumnType.STRING),
        Column("price", ColumnType.FLOAT, non_negative=True),
        Column("created_ts", ColumnType.TIMESTAMP),
    ),
)

USERS = Table(
    name="users",
    key="user_id",
    required=False,
    columns=(
        Column("user_id", ColumnType.STRING, required=True),
        Column("country", ColumnType.STRING),
        Column("age_bucket", ColumnType.STRING),
        Column("signup_ts", ColumnType.TIMESTAMP),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (EVENTS, ITEMS, USERS)}

EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)

DATA_DESCRIPTION = "mtlrec-data.yaml"
"""A raw directory may describe itself in this file, e.g. `preset: movielens` (written by
`mtlrec import`): `mtlrec run --data DIR` then applies that preset without a flag."""


class RejectReason(enum.StrEnum):
    """Why a raw row went to the dead-letter output (SPEC §11, §13)."""

    MISSING_FIELD = "missing_field"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    BAD_VALUE = "bad_value"
    EMPTY_ID = "empty_id"
    OUT_OF_RANGE = "out_of_range"
    MALFORMED_ROW = "malformed_row"
    """A CSV/TSV row with the wrong number of fields, or a JSON line that is not an object."""


REJECT_REASONS: tuple[str, ...] = tuple(r.value for r in RejectReason)
