"""The customer field rules of ``POST /customers``: types, ranges, lengths, places resolved.

``validate`` turns one item into the changes to store (canonical values; None removes a field)
and the reasons it is refused; it never touches the store.
"""

from __future__ import annotations

import json
from typing import Any

from . import FieldError, ItemCheck
from .places import resolve_country, resolve_state

#: The customer fields, in the order the API documents (and GET returns) them.
FIELDS = ("code", "isActive", "country", "state", "city", "yearBorn", "gender", "metadata")
#: What a new customer is when a field is absent: active.
DEFAULTS: dict[str, Any] = {"isActive": True}
MAX_CODE_CHARS = 255
MAX_METADATA_CHARS = 60000
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _metadata_size(metadata: dict[str, Any]) -> int:
    """Characters of the compact JSON of ``metadata``, or a bound below the limit that proves it fits."""
    # Exports carry a few short text values a customer: no character takes more than 6 in JSON
    # (\uXXXX), so a small total proves the limit is kept without encoding it all.
    bound = 2
    for key, value in metadata.items():
        if not isinstance(value, str):
            bound = MAX_METADATA_CHARS + 1
            break
        bound += 6 * (len(key) + len(value)) + 6
    if bound <= MAX_METADATA_CHARS:
        return bound
    return len(_COMPACT_JSON.encode(metadata))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(item: object, stored_country: str | None) -> tuple[dict[str, Any], list[FieldError]]:
    """Check one customer object; return its canonical changes (None = remove) and its errors.

    ``stored_country`` is the alpha-3 country already stored for its code, which a state given
    without its country is checked against.
    """
    if not isinstance(item, dict):
        return {}, [FieldError("", "invalid_type", "Each customer must be a JSON object")]
    check = ItemCheck(item, FIELDS)
    out, bad = check.out, check.bad

    code = item.get("code")
    if code is None:
        bad("code", "required", "Field 'code' is required")
    elif not isinstance(code, str):
        bad("code", "invalid_type", "Field 'code' must be a string")
    elif len(code) == 0:
        bad("code", "invalid_value", "Field 'code' must not be empty")
    elif len(code) > MAX_CODE_CHARS:
        bad("code", "too_long", f"Field 'code' has {len(code)} characters, at most 255 allowed")
    else:
        out["code"] = code

    for name in ("isActive", "yearBorn", "gender", "metadata", "city"):
        if name in item and item[name] is None:
            out[name] = None
    if "isActive" in item and item["isActive"] is not None:
        if isinstance(item["isActive"], bool):
            out["isActive"] = item["isActive"]
        else:
            bad("isActive", "invalid_type", "Field 'isActive' must be true or false")
    if "yearBorn" in item and item["yearBorn"] is not None:
        if _is_int(item["yearBorn"]):
            out["yearBorn"] = item["yearBorn"]
        else:
            bad("yearBorn", "invalid_type", "Field 'yearBorn' must be an integer")
    if "gender" in item and item["gender"] is not None:
        gender = item["gender"]
        if not _is_int(gender):
            bad("gender", "invalid_type", "Field 'gender' must be an integer")
        elif gender not in (0, 1, 2, 3):
            bad("gender", "invalid_value", f"Field 'gender' must be 0, 1, 2 or 3, not {gender}")
        else:
            out["gender"] = gender
    if "metadata" in item and item["metadata"] is not None:
        metadata = item["metadata"]
        if not isinstance(metadata, dict):
            bad("metadata", "invalid_type", "Field 'metadata' must be a JSON object")
        else:
            size = _metadata_size(metadata)
            if size > MAX_METADATA_CHARS:
                bad(
                    "metadata",
                    "too_long",
                    f"Field 'metadata' has {size} characters of JSON, at most 60000 allowed",
                )
            else:
                out["metadata"] = metadata
    if "city" in item and item["city"] is not None:
        city = item["city"]
        if not isinstance(city, str):
            bad("city", "invalid_type", "Field 'city' must be a string")
        elif not city.strip():
            bad("city", "invalid_value", "Field 'city' must not be empty (send null to remove it)")
        else:
            out["city"] = city

    country_alpha3 = stored_country
    if "country" in item:
        country = item["country"]
        if country is None:
            out["country"] = None
            country_alpha3 = None
        elif not isinstance(country, str):
            bad("country", "invalid_type", "Field 'country' must be a string")
        elif not country.strip():
            bad(
                "country",
                "invalid_value",
                "Field 'country' must not be empty (send null to remove it)",
            )
        else:
            resolved = resolve_country(country)
            if resolved.code:
                out["country"] = country_alpha3 = resolved.code
            else:
                country_alpha3 = None
                bad("country", resolved.error or "unknown_country", resolved.description)
    if "state" in item:
        state = item["state"]
        if state is None:
            out["state"] = None
        elif not isinstance(state, str):
            bad("state", "invalid_type", "Field 'state' must be a string")
        elif not state.strip():
            bad("state", "invalid_value", "Field 'state' must not be empty (send null to remove it)")
        else:
            resolved = resolve_state(state, country_alpha3)
            if resolved.code:
                out["state"] = resolved.code
            else:
                bad("state", resolved.error or "unknown_state", resolved.description)
    return out, check.errors


# --------------------------------------------------------------------------------------------
