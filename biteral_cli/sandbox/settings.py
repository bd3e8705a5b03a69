"""The sandbox's settings, checked when created, and the counters it keeps while it runs."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from biteral_cli.errors import UsageError

DEFAULT_API_KEY = "sandbox"


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
        check_number("--latency-ms", self.latency_ms, low=0)
        check_number("--latency-jitter-ms", self.latency_jitter_ms, low=0)
        check_number("--error-rate", self.error_rate, low=0, high=1)
        if self.rate_limit is not None:
            check_number("--rate-limit", self.rate_limit, low=0)
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
        check_number("--drop-response-rate", self.drop_response_rate, low=0, high=1)
        check_number("--drop-response-delay", self.drop_response_delay_s, low=0)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise UsageError("--seed must be an integer")
        if not isinstance(self.per_item_errors, bool):
            raise UsageError("--per-item-errors must be true or false")


def check_number(option: str, value: object, *, low: float, high: float | None = None) -> None:
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
    """POST requests to an entity (``/customers``...), whatever their answer."""
    status_counts: dict[int, int] = field(default_factory=dict)
    items_received: int = 0
    """Customers in accepted POSTs."""
    stored_writes: int = 0
    """Customers created or changed."""
    unchanged_writes: int = 0
    """Accepted customers that changed nothing (not billed by the real API)."""
    dropped_responses: int = 0
    first_post_s: float | None = None
    """``time.monotonic()`` when the first POST arrived (before any injected latency)."""
    last_post_s: float | None = None
    """``time.monotonic()`` when the latest POST arrived."""
    last_post_done_s: float | None = None
    """``time.monotonic()`` when the latest POST was answered."""

    def __post_init__(self) -> None:
        # Not a dataclass field, so asdict()/copy of the counters never meets the lock.
        self._lock = threading.Lock()

    def count_status(self, status: int) -> None:
        """Record one answered request with its status code."""
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
