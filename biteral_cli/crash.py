"""Unexpected exceptions: one line for the user, the traceback in a private file, exit 70.

A crash must never look like "some rows failed" (exit 1) to a script, and must never print or
write the API key: every value registered with ``register_secret`` (and ``BITERAL_API_KEY``) is
masked in the details file before it is written.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from pathlib import Path

EXIT_INTERNAL = 70

_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret so that a crash report never contains it."""
    if value:
        _secrets.add(value)


def _scrub(text: str) -> str:
    env_key = os.environ.get("BITERAL_API_KEY", "").strip()
    for secret in sorted({*_secrets, env_key} - {""}, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def write_details(exc: BaseException) -> Path | None:
    """Write the traceback of ``exc``, secrets masked, to an owner-only file; None if it cannot be written."""
    text = "".join(traceback.format_exception(exc))
    try:
        # mkstemp creates the file with mode 0600: a traceback may quote rows of personal data.
        fd, name = tempfile.mkstemp(prefix="biteral-import-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(_scrub(text))
    except OSError:
        return None
    return Path(name)


def internal_error_line(exc: BaseException) -> str:
    """The one line shown for an unexpected exception: what it was and where its details are."""
    summary = _scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]
    path = write_details(exc)
    where = f"details in {path}" if path is not None else "no details file could be written"
    return f"internal error: {summary}; {where}"
