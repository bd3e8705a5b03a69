"""Entities the tool imports: what the API calls them, their fields, the column names that feed
them and the value rule of each field. One module per entity (``customers``, ``products``, with
``product_values`` and ``product_import`` beside it); the rest of the package reads these tables
instead of naming fields and paths itself."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

#: One row of a synonym table: (field, kind, preference, language, column names).
Synonym = tuple[str, str, int, str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Entity:
    """One kind of record the API takes in bulk."""

    name: str
    path: str
    """The endpoint: ``POST path`` takes a batch, ``GET path?key=...`` returns one record."""
    fields: tuple[str, ...]
    """The payload's fields, in the order the API documents them (and payloads are written in)."""
    key: str
    """The field that identifies a record (repeated keys are updates)."""
    synonyms: tuple[Synonym, ...]
    """Column names that feed each field, in several languages."""
    rules: dict[str, str]
    """Field -> the name of the value rule that normalizes it."""


#: What ``--entity`` takes (the default first) -> the module and name of its Entity, imported
#: only when used (a customers run never loads the product rules).
ENTITIES: dict[str, tuple[str, str]] = {
    "customers": ("customers", "CUSTOMERS"),
    "products": ("products", "PRODUCTS"),
}


def entity_named(name: str) -> Entity:
    """The entity ``--entity NAME`` imports (a key of ``ENTITIES``)."""
    module, attribute = ENTITIES[name]
    entity: Entity = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    return entity
