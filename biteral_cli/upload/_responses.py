"""What an answer of the API means: its verdict by status, its Retry-After, its error codes.

Pure functions of an ``httpx.Response``; nothing here sends, waits or counts.
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from collections.abc import Callable

import httpx

from ._models import FieldError

_INDEXED_FIELD = re.compile(r"^\[(\d+)\]\.?(.*)$")


class Verdict(enum.Enum):
    """What the engine does with an answer."""

    ACCEPTED = "accepted"
    """2xx: every item of the batch was taken."""
    REDIRECT = "redirect"
    """3xx: never followed, the key would go with it."""
    AUTH = "auth"
    """401/403: the key was refused; the run stops."""
    REJECTED = "rejected"
    """400/413: items refused; the body says which, or the batch is split until it does."""
    THROTTLED = "throttled"
    """429: the API is answering, only slower than asked; wait at the gate, within --max-wait."""
    RETRY = "retry"
    """500/502/503/504: a passing failure; retried with backoff, at most --max-retries times."""
    FAILED = "failed"
    """Any other status: the batch fails without a retry."""


_BY_STATUS: dict[int, Verdict] = {
    400: Verdict.REJECTED,
    413: Verdict.REJECTED,
    401: Verdict.AUTH,
    403: Verdict.AUTH,
    429: Verdict.THROTTLED,
    500: Verdict.RETRY,
    502: Verdict.RETRY,
    503: Verdict.RETRY,
    504: Verdict.RETRY,
}
_BY_CLASS: dict[int, Verdict] = {2: Verdict.ACCEPTED, 3: Verdict.REDIRECT}


def classify(status: int) -> Verdict:
    """The verdict on an answer with this status code."""
    return _BY_STATUS.get(status) or _BY_CLASS.get(status // 100, Verdict.FAILED)


def retry_after(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the response's Retry-After asks for (delta seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def body_code(response: httpx.Response) -> str | None:
    """The error code the body names (``payload.code``), or None."""
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("payload"), dict):
        code = data["payload"].get("code")
        return str(code) if code is not None else None
    return None


def describe(response: httpx.Response) -> str:
    """'API answered 503 (service_unavailable)': the status and the body's code, for reasons."""
    code = body_code(response)
    return f"API answered {response.status_code}" + (f" ({code})" if code else "")


def redirect_target(response: httpx.Response) -> str:
    """The host a redirect points to, for a message (the URL itself may carry anything)."""
    return httpx.URL(response.headers.get("location", "")).host or "another place"


def field_errors(response: httpx.Response) -> list[tuple[int | None, FieldError]]:
    """The 400 body's field errors with the batch index each names (None when it names none)."""
    try:
        data = response.json()
    except ValueError:
        return []
    if isinstance(data, list):
        data = data[0] if data else None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        return []
    raw = data["payload"].get("fieldErrors")
    if not isinstance(raw, list):
        return []
    out: list[tuple[int | None, FieldError]] = []
    for entry in raw:
        info = entry.get("payload", entry) if isinstance(entry, dict) else None
        if not isinstance(info, dict):
            continue
        name = str(info.get("field") or "")
        index: int | None = None
        match = _INDEXED_FIELD.match(name)
        if match:
            index, name = int(match.group(1)), match.group(2)
        out.append((index, FieldError(name, str(info.get("code") or ""), str(info.get("description") or ""))))
    return out
