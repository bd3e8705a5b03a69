"""A local HTTP server that behaves like the Biteral customers API, with optional fault injection.

``/products`` (issue 14) lives in ``sandbox_products.py`` and shares this module's guard, batch
reading, storage file and fault injection.

It implements the contract in ``/work/shared/API.md``: ``X-API-Key``/``X-API-Version`` checks,
``POST /customers`` (one object or up to 100, validated, upserted by ``code`` into SQLite, a batch
with one bad item rejected whole), ``GET``/``DELETE /customers?code=`` and ``GET /status``.
Latency, random 500/503, a rate limit (429 + ``Retry-After``), a daily quota (429 until midnight
UTC), 413 and lost responses can be injected to exercise the client's retry logic.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import functools
import hmac
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pycountry
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from biteral_cli import locations
from biteral_cli.errors import UsageError

__all__ = [
    "RunningSandbox",
    "SandboxSettings",
    "SandboxStats",
    "create_app",
    "running_sandbox",
    "serve",
]

DEFAULT_API_KEY = "sandbox"
MAX_BATCH_ITEMS = 100
MAX_CODE_CHARS = 255
MAX_METADATA_CHARS = 60000
PROJECT_ID = "prj_sandbox"
CLIENT_ID = "cli_sandbox"
_FIELDS = ("code", "isActive", "country", "state", "city", "yearBorn", "gender", "metadata")
_STARTUP_WAIT_S = 10.0
_STOP_WAIT_S = 10.0
_SLEEP_SLICE_S = 0.05
_RESOLVE_CACHE = 16384
#: Codes per ``IN (...)`` query: below SQLite's oldest default limit of 999 bound parameters.
_QUERY_CHUNK = 500
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Settings and statistics


@dataclass(frozen=True, kw_only=True)
class SandboxSettings:
    """Where the sandbox listens, the key it accepts, where it stores, the faults it injects."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    db: Path | None = None
    """SQLite file; ``None`` means a temporary one deleted when the sandbox stops."""
    latency_ms: float = 0
    latency_jitter_ms: float = 0
    error_rate: float = 0.0
    """Fraction of requests answered 500 or 503 without storing anything."""
    rate_limit: float | None = None
    """Requests per second above which the sandbox answers 429 with ``Retry-After``."""
    daily_quota: int | None = None
    """Requests a UTC day; beyond them, 429 with ``Retry-After`` until midnight UTC."""
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    """Seconds since the epoch: where the daily quota reads the date (tests move it)."""
    max_body_bytes: int = 10 * 1024 * 1024
    drop_response_rate: float = 0.0
    """Fraction of accepted POSTs that are stored but answered only after the drop delay."""
    drop_response_delay_s: float = 5.0
    seed: int | None = None
    per_item_errors: bool = True
    """False: a rejected batch lists only its first bad item's errors, without ``[i].``."""

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise UsageError("--host must be a host name or address")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise UsageError("--port must be an integer between 0 and 65535")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be between 0 and 65535, not {self.port}")
        if not isinstance(self.api_key, str) or not self.api_key:
            raise UsageError("--api-key must not be empty")
        if self.db is not None and not isinstance(self.db, Path):
            object.__setattr__(self, "db", Path(self.db))
        _check_number("--latency-ms", self.latency_ms, low=0)
        _check_number("--latency-jitter-ms", self.latency_jitter_ms, low=0)
        _check_number("--error-rate", self.error_rate, low=0, high=1)
        if self.rate_limit is not None:
            _check_number("--rate-limit", self.rate_limit, low=0)
            if self.rate_limit <= 0:
                raise UsageError("--rate-limit must be greater than 0")
        if self.daily_quota is not None and (
            isinstance(self.daily_quota, bool) or not isinstance(self.daily_quota, int) or self.daily_quota < 1
        ):
            raise UsageError("--daily-quota must be a whole number of requests, at least 1")
        if not callable(self.clock):
            raise UsageError("clock must be a function returning seconds since the epoch")
        if isinstance(self.max_body_bytes, bool) or not isinstance(self.max_body_bytes, int):
            raise UsageError("--max-body-bytes must be an integer")
        if self.max_body_bytes <= 0:
            raise UsageError("--max-body-bytes must be greater than 0")
        _check_number("--drop-response-rate", self.drop_response_rate, low=0, high=1)
        _check_number("--drop-response-delay", self.drop_response_delay_s, low=0)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise UsageError("--seed must be an integer")
        if not isinstance(self.per_item_errors, bool):
            raise UsageError("--per-item-errors must be true or false")


def _check_number(option: str, value: object, *, low: float, high: float | None = None) -> None:
    """Raise UsageError naming ``option`` unless ``value`` is a finite number within bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{option} must be a number")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise UsageError(f"{option} must be {bounds}, not {value:g}")


@dataclass
class SandboxStats:
    """Counters of what the sandbox saw and did, readable by tests while it runs."""

    requests: int = 0
    posts: int = 0
    """POST /customers requests, whatever their answer."""
    status_counts: dict[int, int] = field(default_factory=dict)
    items_received: int = 0
    """Customers in accepted POSTs."""
    stored_writes: int = 0
    """Customers created or changed."""
    unchanged_writes: int = 0
    """Accepted customers that changed nothing (not billed by the real API)."""
    dropped_responses: int = 0
    first_post_s: float | None = None
    """``time.monotonic()`` when the first POST /customers arrived (before any injected latency)."""
    last_post_s: float | None = None
    """``time.monotonic()`` when the latest POST /customers arrived."""
    last_post_done_s: float | None = None
    """``time.monotonic()`` when the latest POST /customers was answered."""

    def __post_init__(self) -> None:
        # Not a dataclass field, so asdict()/copy of the counters never meets the lock.
        self._lock = threading.Lock()

    def count_status(self, status: int) -> None:
        """Record one answered request with its status code."""
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1


# --------------------------------------------------------------------------------------------
# Locations


def _fold(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a place name."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().replace("’", "'").split())


def _fold_country(text: str) -> str:
    folded = _fold(text)
    return folded[4:] if folded.startswith("the ") else folded


_WIKIDATA_RE = re.compile(r"Q[1-9][0-9]{0,11}")
# ISO 3166-2 suffixes are 1-3 letters or digits; FIPS 10-4 subdivision codes are 2.
_STATE_CODE_RE = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})")
_STATE_SUFFIX_RE = re.compile(r"[A-Z0-9]{1,3}")

# Ids we can map to ISO; any other well-formed WikiData ID is stored as given.
_COUNTRY_WIKIDATA: dict[str, str] = {
    "Q29": "ESP", "Q30": "USA", "Q142": "FRA", "Q183": "DEU", "Q38": "ITA", "Q145": "GBR",
    "Q45": "PRT", "Q96": "MEX", "Q155": "BRA", "Q414": "ARG", "Q298": "CHL", "Q739": "COL",
    "Q419": "PER", "Q16": "CAN", "Q408": "AUS", "Q55": "NLD", "Q31": "BEL", "Q39": "CHE",
    "Q40": "AUT", "Q17": "JPN",
}  # fmt: skip

# English short names pycountry lacks, and a few native names the real API accepts.
_COUNTRY_ALIASES: dict[str, str] = {
    "russia": "RUS", "uk": "GBR", "great britain": "GBR", "britain": "GBR",
    "ivory coast": "CIV", "turkey": "TUR", "vatican": "VAT", "vatican city": "VAT",
    "brunei": "BRN", "cape verde": "CPV", "swaziland": "SWZ", "macedonia": "MKD",
    "burma": "MMR", "east timor": "TLS", "dr congo": "COD", "drc": "COD",
    "espana": "ESP", "deutschland": "DEU", "italia": "ITA", "brasil": "BRA",
    "osterreich": "AUT", "schweiz": "CHE", "suisse": "CHE", "svizzera": "CHE",
    "nederland": "NLD", "belgie": "BEL", "belgique": "BEL", "belgien": "BEL",
    "sverige": "SWE", "norge": "NOR", "danmark": "DNK", "suomi": "FIN", "polska": "POL",
}  # fmt: skip


def _country_name_keys(country: Any) -> set[str]:
    """Every folded name a country answers to: name, official and common name, and their parts."""
    keys: set[str] = set()
    for attr in ("name", "official_name", "common_name"):
        name = getattr(country, attr, None)
        if not name:
            continue
        keys.add(_fold_country(name))
        without_paren = re.sub(r"\s*\(.*?\)", "", name).strip()
        keys.add(_fold_country(without_paren))
        if "," in without_paren:
            # "Congo, The Democratic Republic of the" answers to "Congo" and to the uninverted form.
            base, rest = (part.strip() for part in without_paren.split(",", 1))
            keys.add(_fold_country(base))
            keys.add(_fold_country(f"{rest} {base}"))
    keys.discard("")
    return keys


@functools.cache
def _country_index() -> tuple[dict[str, set[str]], dict[str, str]]:
    """Folded name -> alpha-3 codes it matches; alpha-3 -> English name."""
    by_name: dict[str, set[str]] = collections.defaultdict(set)
    names: dict[str, str] = {}
    for country in pycountry.countries:
        names[country.alpha_3] = country.name
        for key in _country_name_keys(country):
            by_name[key].add(country.alpha_3)
    for alias, alpha3 in _COUNTRY_ALIASES.items():
        by_name[alias].add(alpha3)
    return dict(by_name), names


@dataclass(frozen=True)
class _Resolved:
    code: str | None
    error: str | None = None
    description: str = ""


# Exports repeat a handful of spellings millions of times: resolve each distinct one once.
@functools.lru_cache(maxsize=_RESOLVE_CACHE)
def _resolve_country(value: str) -> _Resolved:
    """Resolve a country given as ISO code, numeric code, WikiData id or name to ISO alpha-3."""
    text = value.strip()
    upper = text.upper()
    if _WIKIDATA_RE.fullmatch(upper):
        # A well-formed WikiData ID is accepted as the real API would; one we cannot map to a
        # country is stored as given rather than refused (the sandbox is never stricter).
        return _Resolved(_COUNTRY_WIKIDATA.get(upper, upper))
    if text.isdigit() and len(text) <= 3:
        found = pycountry.countries.get(numeric=text.zfill(3))
        if found:
            return _Resolved(found.alpha_3)
        return _Resolved(None, "unknown_country", f"Unknown country {value!r}")
    if len(text) == 2 and text.isalpha():
        found = pycountry.countries.get(alpha_2=upper)
        if found:
            return _Resolved(found.alpha_3)
    if len(text) == 3 and text.isalpha():
        found = pycountry.countries.get(alpha_3=upper)
        if found:
            return _Resolved(found.alpha_3)
    by_name, names = _country_index()
    key = _fold_country(text)
    exact = by_name.get(key, set())
    if len(exact) == 1:
        return _Resolved(next(iter(exact)))
    candidates = exact
    if not candidates and key:
        pattern = re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")
        candidates = {code for name, codes in by_name.items() if pattern.search(name) for code in codes}
    if len(candidates) > 1:
        listed = ", ".join(f"{code} ({names[code]})" for code in sorted(candidates)[:6])
        return _Resolved(None, "ambiguous_country", f"Country {value!r} matches several countries: {listed}")
    if not candidates:
        # The API takes a country's name "in English or native language": a name any CLDR locale
        # gives one country only (Deutschland, Nihon's 日本, Hong Kong SAR China) is not refused.
        known = locations.resolve_country(text)
        found = pycountry.countries.get(alpha_2=known.value) if known.value else None
        if found is not None:
            return _Resolved(found.alpha_3)
    hint = f" (did you mean {next(iter(candidates))}?)" if candidates else ""
    return _Resolved(None, "unknown_country", f"Unknown country {value!r}{hint}")


def _subdivision_name_keys(name: str) -> set[str]:
    """Folded names of a subdivision: 'A Coruña [La Coruña]' answers to both, and inverted forms."""
    keys: set[str] = set()
    match = re.fullmatch(r"(.*?)\s*\[(.*)\]\s*", name)
    parts = [match.group(1), match.group(2)] if match else [name]
    for part in parts:
        # The bracketed alternative may end with its own code: "Sir Ynys Môn GB-YNM".
        part = re.sub(r"\s+[A-Z]{2}-[A-Z0-9]+$", "", part).strip()
        if not part:
            continue
        keys.add(_fold(part))
        if "," in part:
            base, rest = (piece.strip() for piece in part.split(",", 1))
            keys.add(_fold(f"{rest} {base}"))
    keys.discard("")
    return keys


@functools.cache
def _subdivision_index() -> tuple[dict[str, set[str]], dict[str, str | None], dict[str, str]]:
    """Folded name -> ISO 3166-2 codes; code -> parent code; code -> display name."""
    by_name: dict[str, set[str]] = collections.defaultdict(set)
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for sub in pycountry.subdivisions:
        parents[sub.code] = getattr(sub, "parent_code", None)
        names[sub.code] = sub.name
        for key in _subdivision_name_keys(sub.name):
            by_name[key].add(sub.code)
    return dict(by_name), parents, names


def _drop_ancestors(codes: set[str], parents: dict[str, str | None]) -> set[str]:
    """Keep the most specific of codes that name the same territory ('La Rioja' the province)."""
    ancestors: set[str] = set()
    for code in codes:
        parent = parents.get(code)
        for _ in range(10):  # hierarchies are at most a few levels deep
            if parent is None:
                break
            ancestors.add(parent)
            parent = parents.get(parent)
    return {code for code in codes if code not in ancestors}


@functools.lru_cache(maxsize=_RESOLVE_CACHE)
def _resolve_state(value: str, country_alpha3: str | None) -> _Resolved:
    """Resolve a state given as ISO 3166-2 code, code without prefix or name to ISO 3166-2."""
    text = value.strip()
    upper = text.upper()
    alpha2 = None
    if country_alpha3:
        country = pycountry.countries.get(alpha_3=country_alpha3)
        alpha2 = country.alpha_2 if country else None
    if _WIKIDATA_RE.fullmatch(upper):
        return _Resolved(upper)  # well-formed, unverifiable here: stored as given
    by_name, parents, names = _subdivision_index()
    shaped = _STATE_CODE_RE.fullmatch(upper)
    if shaped:
        if alpha2 and shaped.group(1) != alpha2:
            return _Resolved(None, "unknown_state", f"State {value!r} is not in country {country_alpha3}")
        if upper in parents or pycountry.countries.get(alpha_2=shaped.group(1)):
            # Former and newer ISO 3166-2 codes than pycountry knows are real API input (the
            # official SDK's example customers use LU-L, MK-85, NO-55...): a code of the right
            # shape for a real country is accepted and stored as given.
            return _Resolved(upper)
    if alpha2 and _STATE_SUFFIX_RE.fullmatch(upper):
        if f"{alpha2}-{upper}" in parents:
            return _Resolved(f"{alpha2}-{upper}")
        if len(upper) == 2 and upper.isdigit():
            return _Resolved(upper)  # a FIPS 10-4 code ("36") within the country: stored as given
    matches = by_name.get(_fold(text), set())
    if alpha2:
        matches = {code for code in matches if code.startswith(f"{alpha2}-")}
    matches = _drop_ancestors(matches, parents)
    if len(matches) == 1:
        return _Resolved(next(iter(matches)))
    if len(matches) > 1:
        listed = ", ".join(f"{code} ({names[code]})" for code in sorted(matches)[:6])
        return _Resolved(None, "ambiguous_state", f"State {value!r} matches several: {listed}")
    known = locations.resolve_state(text, alpha2)  # names in every language pycountry and CLDR know
    if known.value is not None and known.status != "wikidata":
        return _Resolved(known.value)
    where = f" in country {country_alpha3}" if country_alpha3 else ""
    return _Resolved(None, "unknown_state", f"Unknown state {value!r}{where}")


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class _FieldError:
    field: str
    code: str
    description: str


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_item(item: object, stored_country: str | None) -> tuple[dict[str, Any], list[_FieldError]]:
    """Check one customer object; return its canonical changes (None = remove) and its errors."""
    if not isinstance(item, dict):
        return {}, [_FieldError("", "invalid_type", "Each customer must be a JSON object")]
    errors: list[_FieldError] = []
    out: dict[str, Any] = {}

    def bad(name: str, code: str, description: str) -> None:
        errors.append(_FieldError(name, code, description))

    for name in item:
        if name not in _FIELDS:
            bad(name, "unknown_field", f"Unknown field {name!r}")

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
            size = len(_COMPACT_JSON.encode(metadata))
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
            resolved = _resolve_country(country)
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
            resolved = _resolve_state(state, country_alpha3)
            if resolved.code:
                out["state"] = resolved.code
            else:
                bad("state", resolved.error or "unknown_state", resolved.description)
    return out, errors


# --------------------------------------------------------------------------------------------
# Storage


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ordered(payload: dict[str, Any]) -> dict[str, Any]:
    return {name: payload[name] for name in _FIELDS if name in payload}


def merged(before: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    """A stored record after an upsert: fields left out keep their value, ``None`` removes one."""
    payload = dict(before or {})
    for key, value in change.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    # Absent isActive means active: removing it is the same as setting true.
    payload.setdefault("isActive", True)
    return payload


class _Store:
    """The customers table in one SQLite connection shared by the server's event loop."""

    def __init__(self, path: Path | None) -> None:
        target = str(path) if path is not None else ":memory:"
        try:
            self.conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # A test server need not survive a power cut: no fsync on every commit.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS customers (code TEXT PRIMARY KEY, id TEXT NOT NULL"
                " UNIQUE, payload TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT)"
            )
        except sqlite3.Error as exc:
            raise UsageError(f"--db: cannot open the sandbox database {target}: {exc}") from exc
        self.lock = threading.Lock()

    def get(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """The stored row for a code or id, or None."""
        column, value = ("code", code) if code is not None else ("id", id_)
        row = self.conn.execute(
            f"SELECT code, id, payload, created_at, updated_at FROM customers WHERE {column} = ?",
            (value,),
        ).fetchone()
        if row is None:
            return None
        return {
            "code": row[0],
            "id": row[1],
            "payload": json.loads(row[2]),
            "created_at": row[3],
            "updated_at": row[4],
        }

    def _payloads(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored payloads of those codes that exist, a few hundred per query."""
        unique = list(dict.fromkeys(codes))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), _QUERY_CHUNK):
            chunk = unique[start : start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            for code, payload in self.conn.execute(
                f"SELECT code, payload FROM customers WHERE code IN ({marks})", chunk
            ):
                found[code] = json.loads(payload)
        return found

    def upsert_all(self, changes: list[dict[str, Any]]) -> tuple[int, int]:
        """Apply the changes in order in one transaction; return (written, unchanged) counts."""
        written = unchanged = 0
        with self.transaction():
            # One read and at most two writes per batch, however many customers it holds;
            # a code repeated within the batch sees the earlier change, as in order one by one.
            current = self._payloads([change["code"] for change in changes])
            existing = set(current)
            updated: dict[str, bool] = {}  # code written -> changed after it existed
            for change in changes:
                code = change["code"]
                before = current.get(code)
                payload = merged(before, change)
                if before is not None and payload == before:
                    unchanged += 1
                    continue
                current[code] = payload
                updated[code] = updated.get(code, False) or before is not None
                written += 1
            now = _now()
            new = [code for code in updated if code not in existing]
            ids = os.urandom(10 * len(new)).hex()
            self.conn.executemany(
                "INSERT INTO customers (code, id, payload, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        code,
                        f"cus_{ids[20 * i : 20 * i + 20]}",
                        json.dumps(_ordered(current[code])),
                        now,
                        now if updated[code] else None,  # created, then changed within this batch
                    )
                    for i, code in enumerate(new)
                ],
            )
            self.conn.executemany(
                "UPDATE customers SET payload = ?, updated_at = ? WHERE code = ?",
                [(json.dumps(_ordered(current[code])), now, code) for code in updated if code in existing],
            )
        return written, unchanged

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction: committed at the end, rolled back on any error."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def delete(self, *, code: str | None = None, id_: str | None = None) -> dict[str, Any] | None:
        """Delete a customer by code or id; return what was deleted, or None."""
        with self.lock:
            current = self.get(code=code, id_=id_)
            if current is not None:
                self.conn.execute("DELETE FROM customers WHERE code = ?", (current["code"],))
        return current

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self.lock:
            self.conn.close()


# --------------------------------------------------------------------------------------------
# The application


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"object": "error", "payload": {"code": code}}, status, headers=headers)


def _bad_request(code: str, field_errors: Sequence[_FieldError] = ()) -> JSONResponse:
    """A 400 in the shape the official SDK parses: an array whose first element has fieldErrors."""
    errors = [
        {
            "object": "field_error",
            "payload": {"field": e.field, "code": e.code, "description": e.description},
        }
        for e in field_errors
    ]
    body = [{"object": "validation_error", "payload": {"code": code, "fieldErrors": errors}}]
    return JSONResponse(body, 400)


class _BodyTooLarge(Exception):
    pass


class _Sandbox:
    """Per-app state: settings, store, statistics, random source and rate-limit window."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.store = _Store(settings.db)
        self.stats = SandboxStats()
        self.random = random.Random(settings.seed)
        self.window: collections.deque[float] = collections.deque()
        self.closing = threading.Event()
        self.quota_day: date | None = None
        self.quota_used = 0

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake early when the sandbox is stopping so shutdown stays quick."""
        deadline = time.monotonic() + seconds
        for _ in range(int(seconds / _SLEEP_SLICE_S) + 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing.is_set():
                return
            await asyncio.sleep(min(remaining, _SLEEP_SLICE_S))

    def rate_limited(self, arrived: float | None = None) -> int | None:
        """Seconds to wait when a request that arrived at ``arrived`` (monotonic; default now)
        exceeds the rate limit, else None (and count it)."""
        limit = self.settings.rate_limit
        if limit is None:
            return None
        # Fractional limits below 1/s become "one request per 1/limit seconds".
        window_s, capacity = (1.0, int(limit)) if limit >= 1 else (1.0 / limit, 1)
        now = time.monotonic() if arrived is None else arrived
        while self.window and self.window[0] <= now - window_s:
            self.window.popleft()
        if len(self.window) >= capacity:
            return max(1, math.ceil(self.window[0] + window_s - now))
        # Jittered latency can finish requests out of arrival order; keep the window sorted.
        bisect.insort(self.window, now)
        return None

    def over_quota(self) -> int | None:
        """Seconds until midnight UTC when today's requests are used up, else None (and count one)."""
        quota = self.settings.daily_quota
        if quota is None:
            return None
        now = datetime.fromtimestamp(self.settings.clock(), UTC)
        if now.date() != self.quota_day:
            self.quota_day, self.quota_used = now.date(), 0
        if self.quota_used >= quota:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            return max(1, math.ceil((midnight - now).total_seconds()))
        self.quota_used += 1
        return None

    async def answer_at(self, request: Request) -> None:
        """Wait until this request's simulated latency, counted from its arrival, has passed."""
        respond_at = getattr(request.state, "respond_at", None)
        if respond_at is not None:
            await self.sleep(respond_at - time.monotonic())

    async def guard(self, request: Request, *, inject_errors: bool) -> Response | None:
        """Auth, version, rate limit and injected errors: a response to send, or None.

        Also fixes when the answer may leave (``answer_at``): the latency is the API's response
        time, and the work of a request happens within it. A real API works on concurrent requests
        in parallel; this single-threaded sandbox would otherwise queue them and add their work
        to one another's latency.
        """
        s = self.settings
        # The limit counts requests when they arrive, as a real API does.
        arrived = time.monotonic()
        if s.latency_ms or s.latency_jitter_ms:
            jitter = self.random.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0.0
            request.state.respond_at = arrived + (s.latency_ms + jitter) / 1000
        key = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(key.encode(), s.api_key.encode()):
            return _error(401, "invalid_api_key")
        if request.headers.get("x-api-version", "").strip() != "1":
            return _bad_request("invalid_api_version")
        retry_after = self.over_quota()
        if retry_after is not None:
            return _error(429, "quota_exceeded", {"Retry-After": str(retry_after)})
        retry_after = self.rate_limited(arrived)
        if retry_after is not None:
            return _error(429, "rate_limited", {"Retry-After": str(retry_after)})
        if inject_errors and s.error_rate and self.random.random() < s.error_rate:
            if self.random.random() < 0.5:
                return _error(500, "internal_error")
            return _error(503, "service_unavailable")
        return None

    async def read_body(self, request: Request) -> bytes:
        """The request body, or _BodyTooLarge once it (or its Content-Length) exceeds the limit."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_large = declared.isdigit() and int(declared) > limit
        chunks: list[bytes] = []
        size = 0
        # Drain a bounded amount even when refusing, so the client reads our 413 rather than a
        # connection reset while it is still sending.
        drain_cap = 2 * limit + 1024 * 1024
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                too_large = True
            if too_large:
                if size > drain_cap:
                    break
                continue
            chunks.append(chunk)
        if too_large:
            raise _BodyTooLarge
        return b"".join(chunks)

    # -- endpoints -------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        response = await self._status(request)
        await self.answer_at(request)
        return response

    async def _status(self, request: Request) -> Response:
        denied = await self.guard(request, inject_errors=False)
        if denied is not None:
            return denied
        return JSONResponse(
            {
                "object": "status",
                "availableApiVersions": [
                    {
                        "object": "api_version",
                        "payload": {"version": "1.0.0b", "status": "beta", "isDeprecated": False},
                    }
                ],
                "latestStableMajorApiVersion": 1,
                "requestMajorApiVersion": 1,
                "clientId": CLIENT_ID,
                "projectId": PROJECT_ID,
                "roles": ["ROLE_API_USER"],
                "permissions": ["status", "depotIngest", "depotFetch", "depotDelete"],
                "serverTime": _now(),
                "environment": "sandbox",
            }
        )

    async def customers(self, request: Request) -> Response:
        response = await self._customers(request)
        await self.answer_at(request)
        return response

    async def admit(self, request: Request) -> Response | None:
        """Count a POST, then ``guard`` it as a data request (injected faults included)."""
        if request.method == "POST":
            with self.stats._lock:
                self.stats.posts += 1
        return await self.guard(request, inject_errors=True)

    async def _customers(self, request: Request) -> Response:
        denied = await self.admit(request)
        if denied is not None:
            return denied
        if request.method == "POST":
            return await self.post_customers(request)
        code = request.query_params.get("code")
        id_ = request.query_params.get("id") if code is None else None
        if code is None and id_ is None:
            return _bad_request(
                "invalid_request",
                [_FieldError("code", "required", "Give ?code=CODE or ?id=cus_...")],
            )
        if request.method == "DELETE":
            deleted = self.store.delete(code=code, id_=id_)
            if deleted is None:
                return _error(404, "not_found")
            return JSONResponse(
                {
                    "object": "customer_deleted",
                    "payload": {"id": deleted["id"], "code": deleted["code"]},
                }
            )
        found = self.store.get(code=code, id_=id_)
        if found is None:
            return _error(404, "not_found")
        return JSONResponse(
            {
                "object": "customer",
                "id": found["id"],
                "createdAt": found["created_at"],
                "updatedAt": found["updated_at"],
                "projectId": PROJECT_ID,
                "payload": _ordered(found["payload"]),
            }
        )

    async def read_batch(self, request: Request) -> tuple[list[Any], bool] | Response:
        """The items of a POST body (one object or an array of 1 to 100) and whether it was an
        array, or the error response (413, 400) that refuses the body."""
        try:
            raw = await self.read_body(request)
        except _BodyTooLarge:
            return _error(413, "payload_too_large")
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return _bad_request("invalid_json")
        if isinstance(body, dict):
            return [body], False
        if not isinstance(body, list):
            return _bad_request("invalid_body")
        if not body:
            return _bad_request("empty_batch")
        if len(body) > MAX_BATCH_ITEMS:
            return _bad_request("too_many_items")
        return body, True

    async def after_post(self, request: Request, received: int, written: int, unchanged: int) -> None:
        """Count a stored batch and, with --drop-response-rate, hold its answer back."""
        with self.stats._lock:
            self.stats.items_received += received
            self.stats.stored_writes += written
            self.stats.unchanged_writes += unchanged
        s = self.settings
        if s.drop_response_rate and self.random.random() < s.drop_response_rate:
            with self.stats._lock:
                self.stats.dropped_responses += 1
            await self.answer_at(request)
            await self.sleep(s.drop_response_delay_s)

    async def post_customers(self, request: Request) -> Response:
        parsed = await self.read_batch(request)
        if isinstance(parsed, Response):
            return parsed
        items, batch = parsed
        changes: list[dict[str, Any]] = []
        field_errors: list[_FieldError] = []
        for index, item in enumerate(items):
            stored_country = None
            if isinstance(item, dict) and "country" not in item and isinstance(item.get("code"), str):
                current = self.store.get(code=item["code"])
                stored_country = current["payload"].get("country") if current else None
            change, errors = _validate_item(item, stored_country)
            if errors:
                if not self.settings.per_item_errors:
                    field_errors = errors
                    break
                for e in errors:
                    name = e.field
                    if batch:
                        name = f"[{index}].{e.field}" if e.field else f"[{index}]"
                    field_errors.append(_FieldError(name, e.code, e.description))
            changes.append(change)
        if field_errors:
            return _bad_request("invalid_request", field_errors)

        written, unchanged = self.store.upsert_all(changes)
        await self.after_post(request, len(changes), written, unchanged)
        return JSONResponse({"object": "customers_ingest", "payload": {"received": len(changes)}})


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class _CountingMiddleware:
    """Counts every request and the status code it was answered with."""

    def __init__(self, app: ASGIApp, stats: SandboxStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_post = scope.get("method") == "POST"
        with self.stats._lock:
            self.stats.requests += 1
            if is_post:
                now = time.monotonic()
                if self.stats.first_post_s is None:
                    self.stats.first_post_s = now
                self.stats.last_post_s = now

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.count_status(int(message["status"]))
                if is_post:
                    self.stats.last_post_done_s = time.monotonic()
            await send(message)

        await self.app(scope, receive, counting_send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _error(exc.status_code, codes.get(exc.status_code, "error"), exc.headers)


def create_app(settings: SandboxSettings) -> Starlette:
    """A Starlette app implementing the Biteral customers API; its state is ``app.state.sandbox``.

    With ``settings.db`` None the data lives in memory (``running_sandbox`` uses a temporary file).
    """
    from .sandbox_products import products_endpoint

    sandbox = _Sandbox(settings)
    app = Starlette(
        routes=[
            Route("/status", sandbox.status, methods=["GET"]),
            Route("/customers", sandbox.customers, methods=["GET", "POST", "DELETE"]),
            # Products live in their own module and table (issue 14).
            Route("/products", products_endpoint(sandbox), methods=["GET", "POST", "DELETE"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.add_middleware(_CountingMiddleware, stats=sandbox.stats)
    app.state.sandbox = sandbox
    return app


# --------------------------------------------------------------------------------------------
# Running it


@dataclass(eq=False)
class RunningSandbox:
    """A sandbox serving in a background thread of this process."""

    url: str
    api_key: str = field(repr=False)
    db: Path
    settings: SandboxSettings
    stats: SandboxStats
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _state: _Sandbox = field(repr=False)
    _tempdir: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        """The port the sandbox is bound to."""
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop serving, close the database and delete it if temporary; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._state.closing.set()
        self._server.should_exit = True
        self._thread.join(_STOP_WAIT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_WAIT_S)
        self._state.store.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)


@contextmanager
def running_sandbox(settings: SandboxSettings | None = None) -> Iterator[RunningSandbox]:
    """uvicorn.Server in a background thread; waits until it is accepting; always stops it."""
    sandbox = start_sandbox(settings)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound here so a busy port fails before any thread starts."""
    sock: socket.socket | None = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise UsageError(f"cannot start the sandbox on {host}:{port}: {exc.strerror or exc}") from exc


def start_sandbox(settings: SandboxSettings | None = None) -> RunningSandbox:
    """Start a sandbox in a background thread and return once it accepts connections."""
    settings = settings or SandboxSettings()
    tempdir: Path | None = None
    db = settings.db
    if db is None:
        tempdir = Path(tempfile.mkdtemp(prefix="biteral-sandbox-"))
        db = tempdir / "customers.sqlite"
    state: _Sandbox | None = None
    try:
        sock = _bind(settings.host, settings.port)
        try:
            app = create_app(replace(settings, db=db))
        except BaseException:
            sock.close()
            raise
    except BaseException:
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        raise
    state = app.state.sandbox
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except SystemExit:
            # uvicorn exits on a startup failure; the waiting loop below reports it.
            pass
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="biteral-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_WAIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(_STOP_WAIT_S)
        state.store.close()
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        raise UsageError(f"cannot start the sandbox on {settings.host}:{settings.port}")
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    return RunningSandbox(
        url=f"http://{shown_host}:{port}",
        api_key=settings.api_key,
        db=db,
        settings=settings,
        stats=state.stats,
        _server=server,
        _thread=thread,
        _state=state,
        _tempdir=tempdir,
    )


def key_hint(api_key: str) -> str:
    """How to refer to the key without showing it: the public default is named, others are not."""
    if api_key == DEFAULT_API_KEY:
        return f"API key: {DEFAULT_API_KEY!r} (the default)"
    return f"API key: the one you configured ({len(api_key)} characters)"


def serve(settings: SandboxSettings, *, echo: Callable[[str], None] = print) -> None:
    """Blocking: serve until Ctrl-C, after printing one line with the URL and the key hint.

    The URL carries the actual port when ``settings.port`` is 0.
    """
    with running_sandbox(settings) as sandbox:
        try:
            echo(f"Biteral sandbox listening on {sandbox.url} — {key_hint(settings.api_key)}; Ctrl-C to stop")
            # join() with a timeout keeps the main thread responsive to Ctrl-C.
            while sandbox._thread.is_alive():
                sandbox._thread.join(0.5)
        except KeyboardInterrupt:
            return
