"""An entity the sandbox serves at ``/<name>`` (``CUSTOMERS``, ``PRODUCTS``): POST (one object or a
batch, upserted by code), ``GET`` and ``DELETE ?code=`` or ``?id=``; what differs between entities
is data (``Entity``).

``Entity.validate`` checks one item against the entity's field rules (``validation/<name>.py``);
a batch with one bad item is refused whole, every bad item's errors listed as ``[i].field``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .faults import BodyTooLargeError
from .state import PROJECT_ID, SandboxState
from .store import Table, TableSpec
from .validation import FieldError, InvalidJsonError, bad_request, error, items_of, located, parse_json
from .validation import customers as customer_rules
from .validation import products as product_rules

#: Checks one item: (its changes to store, None removing a field; the reasons it is refused).
Validator = Callable[[object, Table], tuple[dict[str, Any], list[FieldError]]]


@dataclass(frozen=True)
class Entity:
    """One kind of record: how it is stored, what its JSON objects are called, how it is checked."""

    table: TableSpec
    singular: str
    """``customer``: the answers' ``object`` is ``customer``, ``customer_deleted``, ``customers_ingest``."""
    validate: Validator
    shown: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """The payload GET returns for a stored record (default: as stored, fields in order)."""

    @property
    def path(self) -> str:
        """Where it is served: ``/customers``."""
        return f"/{self.table.name}"


async def handle(entity: Entity, request: Request, state: SandboxState) -> Response:
    """Answer a request to an entity's path that passed the key check and the faults."""
    table = state.store.table(entity.table)
    if request.method == "POST":
        return await ingest(entity, table, request, state)
    code = request.query_params.get("code")
    id_ = request.query_params.get("id") if code is None else None
    if code is None and id_ is None:
        hint = f"Give ?code=CODE or ?id={entity.table.id_prefix}..."
        return bad_request("invalid_request", [FieldError("code", "required", hint)])
    if request.method == "DELETE":
        deleted = table.delete(code=code, id_=id_)
        if deleted is None:
            return error(404, "not_found")
        return JSONResponse(
            {"object": f"{entity.singular}_deleted", "payload": {"id": deleted["id"], "code": deleted["code"]}}
        )
    found = table.get(code=code, id_=id_)
    if found is None:
        return error(404, "not_found")
    return JSONResponse(
        {
            "object": entity.singular,
            "id": found["id"],
            "createdAt": found["created_at"],
            "updatedAt": found["updated_at"],
            "projectId": PROJECT_ID,
            "payload": entity.shown(found) if entity.shown is not None else entity.table.ordered(found["payload"]),
        }
    )


async def ingest(entity: Entity, table: Table, request: Request, state: SandboxState) -> Response:
    """POST: validate every item, then store them all in one transaction, or refuse the lot."""
    try:
        raw = await state.faults.read_body(request)
    except BodyTooLargeError:
        return error(413, "payload_too_large")
    try:
        body = parse_json(raw)
    except InvalidJsonError:
        return bad_request("invalid_json")
    parsed = items_of(body)
    if isinstance(parsed, Response):
        return parsed
    items, batch = parsed
    changes: list[dict[str, Any]] = []
    field_errors: list[FieldError] = []
    for index, item in enumerate(items):
        change, errors = entity.validate(item, table)
        if errors:
            if not state.settings.per_item_errors:
                field_errors = errors
                break
            field_errors += located(errors, index, batch)
        changes.append(change)
    if field_errors:
        return bad_request("invalid_request", field_errors)
    written, unchanged = table.upsert_all(changes)
    stats = state.stats
    with stats._lock:
        stats.items_received += len(changes)
        stats.stored_writes += written
        stats.unchanged_writes += unchanged
    return JSONResponse({"object": f"{entity.table.name}_ingest", "payload": {"received": len(changes)}})


def _validate_customer(item: object, table: Table) -> tuple[dict[str, Any], list[FieldError]]:
    # A state sent without its country is checked against the country already stored.
    stored_country = None
    if isinstance(item, dict) and "country" not in item and isinstance(item.get("code"), str):
        current = table.get(code=item["code"])
        stored_country = current["payload"].get("country") if current else None
    return customer_rules.validate(item, stored_country)


CUSTOMERS = Entity(
    table=TableSpec("customers", "cus_", customer_rules.FIELDS, customer_rules.DEFAULTS),
    singular="customer",
    validate=_validate_customer,
)


def _validate_product(item: object, table: Table) -> tuple[dict[str, Any], list[FieldError]]:
    # An update of a stored product may leave its title out.
    exists = (
        isinstance(item, dict)
        and "title" not in item
        and isinstance(item.get("code"), str)
        and table.get(code=item["code"]) is not None
    )
    return product_rules.validate(item, exists)


PRODUCTS = Entity(
    table=TableSpec("products", "prd_", product_rules.FIELDS, product_rules.DEFAULTS),
    singular="product",
    validate=_validate_product,
    shown=product_rules.shown,
)
