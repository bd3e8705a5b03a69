"""The sandbox's ``/products``: POST (one or up to 100, upsert by code), GET and DELETE ``?code=``/``?id=``.

It checks what Biteral's ``POST /products`` page documents (API.md, section Products): ``code`` and
``title`` required (title may be left out of an update of a stored product), the lengths, ``price``
as ``{"amount": "49.95", "currency": "EUR"}`` with the amount a string using ``.`` and the currency
ISO 4217, ``attributes``/``brand``/``category`` with their required ``title``/``code``, URLs
absolute http(s), ``metadata`` an object of at most 60000 characters of JSON. The API accepts only
some ISO 4217 currencies and does not say which; the sandbox refuses the one the official SDK's
error example shows refused (``XCD``) and accepts the rest. A batch with one bad product is
rejected whole, as for customers. GET answers in the documented shape: brand, category and each
attribute as entities (``{"object": "brand", "id": ..., "payload": {...}}``), price as sent.
Products are kept in their own ``products`` table of the sandbox's SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pycountry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from .sandbox import _Sandbox

#: Currencies the API refuses although ISO 4217 has them (the SDK's error example sends XCD).
REFUSED_CURRENCIES = frozenset({"XCD"})
FIELDS = ("code", "isActive", "title", "description", "price", "attributes", "brand", "category", "imageUrl", "url")
_ORDER = (*FIELDS, "metadata")
_AMOUNT = re.compile(r"\d+(\.\d+)?")
# (field, limit): string fields and their documented maximum length
_TEXT_LIMITS = {"code": 255, "title": 10000, "description": 60000, "imageUrl": 60000, "url": 60000}
# object fields: name -> {member: (required, limit)}
_OBJECTS: dict[str, dict[str, tuple[bool, int]]] = {
    "brand": {"code": (True, 255), "name": (False, 255)},
    "category": {"code": (True, 255), "title": (False, 255), "description": (False, 60000)},
    "attribute": {"title": (True, 255), "value": (False, 60000)},
}
_ENTITY = {
    "brand": ("brand", "brd"),
    "category": ("product_category", "pca"),
    "attribute": ("product_attribute", "pat"),
}


def _check_object(name: str, where: str, value: object, bad: Callable[[str, str, str], None]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        bad(where, "invalid_type", f"Field '{where}' must be a JSON object")
        return None
    members = _OBJECTS[name]
    ok = True
    for member in value:
        if member not in members:
            bad(f"{where}.{member}", "unknown_field", f"Unknown field {member!r}")
            ok = False
    for member, (required, limit) in members.items():
        text = value.get(member)
        if text is None:
            if required:
                bad(f"{where}.{member}", "required", f"Field '{where}.{member}' is required")
                ok = False
        elif not isinstance(text, str):
            bad(f"{where}.{member}", "invalid_type", f"Field '{where}.{member}' must be a string")
            ok = False
        elif len(text) > limit:
            bad(
                f"{where}.{member}", "too_long", f"Field '{where}.{member}' has {len(text)} characters, at most {limit}"
            )
            ok = False
    return value if ok else None


def _check_price(value: object, bad: Callable[[str, str, str], None]) -> dict[str, str] | None:
    if not isinstance(value, dict):
        bad("price", "invalid_type", "Field 'price' must be an object with amount and currency")
        return None
    amount, currency = value.get("amount"), value.get("currency")
    ok = set(value) <= {"amount", "currency"}
    if not ok:
        bad("price", "unknown_field", "Field 'price' takes only amount and currency")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        bad("price.amount", "invalid_value", "Field 'price.amount' must be a string like \"49.95\" ('.' as separator)")
        ok = False
    if (
        not isinstance(currency, str)
        or pycountry.currencies.get(alpha_3=currency) is None
        or currency != currency.upper()
    ):
        bad("price.currency", "invalid_value", f"Field 'price.currency' must be an ISO 4217 code, not {currency!r}")
        ok = False
    elif currency in REFUSED_CURRENCIES:
        bad("price.currency", "invalid_currency", f"{currency} is not a valid currency")
        ok = False
    return {"amount": amount, "currency": currency} if ok else None  # type: ignore[dict-item]


def _is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in text)


def validate_product(item: object, exists: bool) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """One product's canonical changes (None = remove the field) and its (field, code, description)
    errors; ``exists`` says whether its code is stored already (then title may be left out)."""
    if not isinstance(item, dict):
        return {}, [("", "invalid_type", "Each product must be a JSON object")]
    errors: list[tuple[str, str, str]] = []
    out: dict[str, Any] = {}

    def bad(name: str, code: str, description: str) -> None:
        errors.append((name, code, description))

    for name in item:
        if name not in _ORDER:
            bad(name, "unknown_field", f"Unknown field {name!r}")
    if not isinstance(item.get("code"), str) or not item["code"]:
        bad("code", "required", "Field 'code' is required (a non-empty string)")
    if item.get("title") is None and not (exists and "title" not in item):
        bad("title", "required", "Field 'title' is required")
    for name, value in item.items():
        if name not in _ORDER or (name in ("code", "title") and value is None):
            continue
        if value is None:
            out[name] = None
        elif name in _TEXT_LIMITS:
            if not isinstance(value, str):
                bad(name, "invalid_type", f"Field '{name}' must be a string")
            elif len(value) > _TEXT_LIMITS[name]:
                bad(name, "too_long", f"Field '{name}' has {len(value)} characters, at most {_TEXT_LIMITS[name]}")
            elif name in ("imageUrl", "url") and not _is_url(value):
                bad(name, "invalid_value", f"Field '{name}' must be an absolute http(s) URL")
            else:
                out[name] = value
        elif name == "isActive":
            if isinstance(value, bool):
                out[name] = value
            else:
                bad(name, "invalid_type", "Field 'isActive' must be true or false")
        elif name == "price":
            price = _check_price(value, bad)
            if price is not None:
                out[name] = price
        elif name in ("brand", "category"):
            checked = _check_object(name, name, value, bad)
            if checked is not None:
                out[name] = checked
        elif name == "attributes":
            if not isinstance(value, list):
                bad(name, "invalid_type", "Field 'attributes' must be an array")
                continue
            checked_all = [_check_object("attribute", f"attributes[{i}]", a, bad) for i, a in enumerate(value)]
            if all(a is not None for a in checked_all):
                out[name] = checked_all
        elif name == "metadata":
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            if not isinstance(value, dict):
                bad(name, "invalid_type", "Field 'metadata' must be a JSON object")
            elif size > 60000:
                bad(name, "too_long", f"Field 'metadata' has {size} characters of JSON, at most 60000 allowed")
            else:
                out[name] = value
    return out, errors


class ProductStore:
    """The ``products`` table, in the sandbox's SQLite connection and under its lock."""

    def __init__(self, sandbox: _Sandbox) -> None:
        self.store = sandbox.store
        self.conn = sandbox.store.conn
        self.lock = sandbox.store.lock
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS products (code TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
            " payload TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT)"
        )

    def get(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """The stored product for a code or id, or None."""
        column, value = ("code", code) if code is not None else ("id", id_)
        with self.lock:
            row = self.conn.execute(
                f"SELECT code, id, payload, created_at, updated_at FROM products WHERE {column} = ?", (value,)
            ).fetchone()
        if row is None:
            return None
        return {"code": row[0], "id": row[1], "payload": json.loads(row[2]), "created_at": row[3], "updated_at": row[4]}

    def exists(self, codes: list[str]) -> set[str]:
        """Which of ``codes`` are stored."""
        marks = ",".join("?" * len(codes))
        with self.lock:
            return {r[0] for r in self.conn.execute(f"SELECT code FROM products WHERE code IN ({marks})", codes)}

    def upsert_all(self, changes: list[dict[str, Any]], now: str) -> tuple[int, int]:
        from .sandbox import merged

        """Apply the changes in order in one transaction (omitted keeps, None removes); return
        (written, unchanged)."""
        written = unchanged = 0
        with self.store.transaction():
            for change in changes:
                code = change["code"]
                row = self.conn.execute("SELECT payload FROM products WHERE code = ?", (code,)).fetchone()
                before = json.loads(row[0]) if row else None
                payload = merged(before, change)
                if payload == before:
                    unchanged += 1
                    continue
                written += 1
                text = json.dumps(payload, ensure_ascii=False)
                if before is None:
                    self.conn.execute(
                        "INSERT INTO products (code, id, payload, created_at) VALUES (?, ?, ?, ?)",
                        (code, f"prd_{os.urandom(10).hex()}", text, now),
                    )
                else:
                    self.conn.execute(
                        "UPDATE products SET payload = ?, updated_at = ? WHERE code = ?", (text, now, code)
                    )
        return written, unchanged

    def delete(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """Delete a product by code or id; return what was deleted, or None."""
        current = self.get(code=code, id_=id_)
        if current is not None:
            with self.lock:
                self.conn.execute("DELETE FROM products WHERE code = ?", (current["code"],))
        return current


def _entity(kind: str, payload: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """A brand, category or attribute as GET returns it: an entity wrapping the fields sent."""
    obj, prefix = _ENTITY[kind]
    digest = hashlib.sha1(json.dumps([kind, payload], sort_keys=True).encode()).hexdigest()[:20]
    return {
        "object": obj,
        "id": f"{prefix}_{digest}",
        "createdAt": stored["created_at"],
        "updatedAt": stored["updated_at"],
        "payload": payload,
    }


def product_json(stored: dict[str, Any], project_id: str) -> dict[str, Any]:
    """The GET /products answer for a stored product."""
    payload = dict(stored["payload"])
    for kind in ("brand", "category"):
        if kind in payload:
            payload[kind] = _entity(kind, payload[kind], stored)
    if "attributes" in payload:
        payload["attributes"] = [_entity("attribute", a, stored) for a in payload["attributes"]]
    return {
        "object": "product",
        "id": stored["id"],
        "createdAt": stored["created_at"],
        "updatedAt": stored["updated_at"],
        "projectId": project_id,
        "payload": {name: payload[name] for name in _ORDER if name in payload},
    }


def products_endpoint(sandbox: _Sandbox) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``/products`` for this sandbox (its guard, latency and faults)."""
    from .sandbox import PROJECT_ID, _bad_request, _error, _FieldError, _now

    store = ProductStore(sandbox)

    async def post(request: Request) -> Response:
        parsed = await sandbox.read_batch(request)
        if isinstance(parsed, Response):
            return parsed
        items, batch = parsed
        codes = [i["code"] for i in items if isinstance(i, dict) and isinstance(i.get("code"), str)]
        stored = store.exists(codes) if codes else set()
        changes, field_errors = [], []
        for index, item in enumerate(items):
            change, errors = validate_product(item, isinstance(item, dict) and item.get("code") in stored)
            if errors and not sandbox.settings.per_item_errors:
                field_errors = [_FieldError(*errors[0])]
                break
            for name, code, description in errors:
                where = (f"[{index}].{name}" if name else f"[{index}]") if batch else name
                field_errors.append(_FieldError(where, code, description))
            changes.append(change)
            if isinstance(item, dict) and isinstance(item.get("code"), str):
                stored.add(item["code"])  # a later item of the batch may update it
        if field_errors:
            return _bad_request("invalid_request", field_errors)
        written, unchanged = store.upsert_all(changes, _now())
        await sandbox.after_post(request, len(changes), written, unchanged)
        return JSONResponse({"object": "products_ingest", "payload": {"received": len(changes)}})

    async def handle(request: Request) -> Response:
        denied = await sandbox.admit(request)
        if denied is not None:
            return denied
        if request.method == "POST":
            return await post(request)
        code = request.query_params.get("code")
        id_ = request.query_params.get("id") if code is None else None
        if code is None and id_ is None:
            return _bad_request("invalid_request", [_FieldError("code", "required", "Give ?code=CODE or ?id=prd_...")])
        if request.method == "DELETE":
            deleted = store.delete(code=code, id_=id_)
            if deleted is None:
                return _error(404, "not_found")
            return JSONResponse(
                {"object": "product_deleted", "payload": {"id": deleted["id"], "code": deleted["code"]}}
            )
        found = store.get(code=code, id_=id_)
        if found is None:
            return _error(404, "not_found")
        return JSONResponse(product_json(found, PROJECT_ID))

    async def endpoint(request: Request) -> Response:
        response = await handle(request)
        await sandbox.answer_at(request)
        return response

    return endpoint
