"""The small data types that travel between stages: rows as read, issues, prepared customers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .entities.customers import CUSTOMERS

#: The customer fields of ``POST /customers``, in the order the API documents them.
FIELDS: tuple[str, ...] = CUSTOMERS.fields

Stage = Literal["read", "validate", "api"]

#: Columns the failure and warning reports add after the input's own; ignored when fed back in.
REPORT_COLUMNS: tuple[str, ...] = ("_source", "_row", "_stage", "_field", "_error", "_extra")


@dataclass(slots=True)
class SourceRow:
    """One input record exactly as read, with the place it came from."""

    source: str
    """The input's name as the user gave it (``-`` for standard input)."""
    row: int
    """1-based position: the line a CSV/JSONL record starts on, the sheet row in Excel (header = 1)."""
    cells: dict[str, Any]
    """Header -> value as read: text for CSV/Excel, the JSON type for JSON inputs; empty is ``""``."""
    error: str | None = None
    """Set by the reader when the row itself is broken (bad JSON, too many cells): it is rejected."""
    warnings: list[tuple[str, str]] | None = None
    """(column, message) noticed by the reader (a number Excel could not hold whole): sent, warned."""


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem with one field of one row; ``field`` is empty when it concerns the whole row."""

    field: str
    message: str


@dataclass(slots=True)
class Prepared:
    """A row after mapping and normalization: a payload to send, or the errors that reject it."""

    row: SourceRow
    payload: dict[str, Any] | None
    """The JSON object to POST; ``None`` when the row is rejected."""
    code: str | None = None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    stage: Stage = "validate"


@dataclass(slots=True)
class Extracted:
    """What the column mapping pulled out of one row, before any value is normalized."""

    fields: dict[str, Any]
    """Field name (one of FIELDS but ``metadata``) -> raw value; only fields whose column exists."""
    metadata_json: Any = None
    """Raw value of a ``metadata`` column (JSON text or, from JSON inputs, an object); None if absent."""
    metadata_extra: dict[str, Any] = field(default_factory=dict)
    """Metadata key -> raw value from unmapped and ``metadata.x`` columns; empty cells left out."""
