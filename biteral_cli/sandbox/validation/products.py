"""The product field rules of ``POST /products`` (API.md, section Products), and the shape GET
returns a product in.

``validate`` checks what Biteral's page documents: ``code`` and ``title`` required (title may be
left out of an update of a stored product), the lengths, ``price`` as ``{"amount": "49.95",
"currency": "EUR"}`` with the amount a string using ``.`` and the currency ISO 4217,
``attributes``/``brand``/``category`` with their required ``title``/``code``, URLs absolute
http(s), ``metadata`` an object of at most 60000 characters of JSON. The API accepts only some ISO
4217 currencies and does not say which; the sandbox refuses the one the official SDK's error
example shows refused (``XCD``) and accepts the rest. ``shown`` gives brand, category and each
attribute as entities (``{"object": "brand", "id": ..., "payload": {...}}``), price as sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pycountry

from biteral_cli.entities.product_values import API_FIELDS

from . import FieldError, ItemCheck

#: Currencies the API refuses although ISO 4217 has them (the SDK's error example sends XCD).
REFUSED_CURRENCIES = frozenset({"XCD"})
#: The product fields, in the order the API documents (and GET returns) them.
FIELDS = API_FIELDS
#: What a new product is when a field is absent: active.
DEFAULTS: dict[str, Any] = {"isActive": True}
MAX_METADATA_CHARS = 60000
_AMOUNT = re.compile(r"\d+(\.\d+)?")
#: String fields and their documented maximum length.
_TEXT_LIMITS = {"code": 255, "title": 10000, "description": 60000, "imageUrl": 60000, "url": 60000}
#: Object fields: name -> {member: (required, limit)}.
_OBJECTS: dict[str, dict[str, tuple[bool, int]]] = {
    "brand": {"code": (True, 255), "name": (False, 255)},
    "category": {"code": (True, 255), "title": (False, 255), "description": (False, 60000)},
    "attribute": {"title": (True, 255), "value": (False, 60000)},
}
#: How GET wraps each object field: (its ``object`` name, its id prefix).
_ENTITY = {
    "brand": ("brand", "brd"),
    "category": ("product_category", "pca"),
    "attribute": ("product_attribute", "pat"),
}

Bad = Callable[[str, str, str], None]


def _check_object(name: str, where: str, value: object, bad: Bad) -> dict[str, Any] | None:
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


def _check_price(value: object, bad: Bad) -> dict[str, str] | None:
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
    if not ok or not isinstance(amount, str) or not isinstance(currency, str):
        return None
    return {"amount": amount, "currency": currency}


def _is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in text)


def validate(item: object, exists: bool) -> tuple[dict[str, Any], list[FieldError]]:
    """Check one product object; return its canonical changes (None = remove) and its errors.

    ``exists`` says whether its code is stored already (then title may be left out).
    """
    if not isinstance(item, dict):
        return {}, [FieldError("", "invalid_type", "Each product must be a JSON object")]
    check = ItemCheck(item, FIELDS)
    out, bad = check.out, check.bad
    if not isinstance(item.get("code"), str) or not item["code"]:
        bad("code", "required", "Field 'code' is required (a non-empty string)")
    if item.get("title") is None and not (exists and "title" not in item):
        bad("title", "required", "Field 'title' is required")
    for name, value in item.items():
        if name not in FIELDS or (name in ("code", "title") and value is None):
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
            if not isinstance(value, dict):
                bad(name, "invalid_type", "Field 'metadata' must be a JSON object")
                continue
            size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            if size > MAX_METADATA_CHARS:
                bad(name, "too_long", f"Field 'metadata' has {size} characters of JSON, at most 60000 allowed")
            else:
                out[name] = value
    return out, check.errors


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


def shown(stored: dict[str, Any]) -> dict[str, Any]:
    """The payload GET /products returns for a stored product: brand, category and attributes as entities."""
    payload = dict(stored["payload"])
    for kind in ("brand", "category"):
        if kind in payload:
            payload[kind] = _entity(kind, payload[kind], stored)
    if "attributes" in payload:
        payload["attributes"] = [_entity("attribute", a, stored) for a in payload["attributes"]]
    return {name: payload[name] for name in FIELDS if name in payload}
