"""What the upload needs to know before it starts, checked when created: where, with which key, how hard.

``Secret`` keeps the API key out of every repr, log line and message; ``UploadSettings`` refuses a
bad option with a UsageError naming it, before any request is made.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from biteral_cli import __version__
from biteral_cli.entities.customers import CUSTOMERS
from biteral_cli.errors import ConfigError, UsageError

# An endpoint is a plain path: no scheme, host, query, fragment or climbing out with '..'.
_ENDPOINT = re.compile(r"/[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)*")


class Secret:
    """A string that never shows itself: repr/str give '****' + last 4 chars; reveal() gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself; only for the one header that needs it."""
        return self._value

    def masked(self) -> str:
        """Return '****' plus the last 4 characters (only '****' when the secret is short)."""
        # A short key would be mostly given away by its last 4 characters.
        return "****" + (self._value[-4:] if len(self._value) >= 8 else "")

    def __repr__(self) -> str:
        return self.masked()

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(self.masked(), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class RateLimit:
    """A client-side cap on requests per second."""

    per_second: float

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and self.per_second < float("inf")):
            raise UsageError("--rate must be a positive number of requests per second or minute")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse '20/s', '20/sec', '1200/min' or '5' (per second); UsageError naming --rate."""
        raw = text.strip().lower().replace(" ", "")
        number, _, unit = raw.partition("/")
        divisors = {
            "": 1.0,
            "s": 1.0,
            "sec": 1.0,
            "second": 1.0,
            "m": 60.0,
            "min": 60.0,
            "minute": 60.0,
            "h": 3600.0,
            "hour": 3600.0,
        }
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if unit not in divisors or not (0 < value < float("inf")):
            raise UsageError(f"--rate: cannot read {text!r}; use a positive number with /s or /min, e.g. 20/s")
        return cls(per_second=value / divisors[unit])


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour)?")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds in '600', '90s', '10m' or '1h'; a UsageError naming ``option`` otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise UsageError(f"{option}: cannot read {text!r}; give seconds (600) or a duration such as 10m or 1h")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """A short human form of a duration: '45s', '10m', '2h 05m'."""
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m" + (f" {secs:02d}s" if secs else "")
    return f"{secs}s"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost or a loopback address)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class UploadSettings:
    """How to reach the API and how hard to push it; validated on creation (UsageError)."""

    api_url: str
    api_key: Secret
    concurrency: int = 4
    max_retries: int = 5
    max_wait_s: float = 600.0
    """Total seconds the run may spend held back by 429 answers (--max-wait); beyond it, it stops."""
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    rate: RateLimit | None = None
    timeout_s: float = 30.0
    allow_insecure_http: bool = False
    max_consecutive_failures: int = 10
    user_agent: str = f"biteral-import/{__version__}"
    endpoint: str = CUSTOMERS.path
    """The path batches are POSTed to: one per entity (``/customers``, ``/products``)."""

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", Secret(self.api_key))
        key = self.api_key.reveal()
        if not key:
            raise ConfigError("No API key: set BITERAL_API_KEY")
        if not key.isascii() or not key.isprintable() or key != key.strip():
            raise ConfigError("The API key in BITERAL_API_KEY contains spaces or characters a key cannot have")
        object.__setattr__(self, "api_url", _validate_url(self.api_url, self.allow_insecure_http))
        if not _ENDPOINT.fullmatch(self.endpoint):
            raise UsageError(f"the endpoint must be a path such as /customers (got {self.endpoint!r})")
        if not 1 <= self.concurrency <= 64:
            raise UsageError(f"--concurrency must be between 1 and 64 (got {self.concurrency})")
        if not 0 <= self.max_retries <= 100:
            raise UsageError(f"--max-retries must be between 0 and 100 (got {self.max_retries})")
        if not self.timeout_s > 0:
            raise UsageError(f"--timeout must be positive (got {self.timeout_s})")
        if not 0 <= self.max_wait_s < float("inf"):
            raise UsageError(f"--max-wait must be 0 or more seconds (got {self.max_wait_s:g})")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise UsageError("backoff limits cannot be negative")
        if self.max_consecutive_failures < 1:
            raise UsageError("max_consecutive_failures must be at least 1")

    @property
    def entity(self) -> str:
        """What the endpoint ingests, for messages: 'customers' for ``/customers``."""
        return self.endpoint.strip("/").replace("/", " ")


def _validate_url(url: str, allow_insecure_http: bool) -> str:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise UsageError(f"--api-url: {url!r} is not a URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"--api-url must be an http(s) URL such as https://api.biteral.ai (got {url!r})")
    if parsed.userinfo:
        raise UsageError("--api-url must not contain a user name or password; the key goes in BITERAL_API_KEY")
    if parsed.query or parsed.fragment:
        raise UsageError("--api-url must not contain a query or fragment")
    if parsed.scheme == "http" and not is_loopback(parsed.host) and not allow_insecure_http:
        raise UsageError(
            f"--api-url uses plain http:// for {parsed.host}, which would send the API key "
            "unencrypted; use https:// or pass --allow-insecure-http"
        )
    return str(parsed).rstrip("/")
