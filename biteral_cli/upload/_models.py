"""The values the upload engine takes and gives: items, field errors, outcomes, counters, clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Item:
    """One record ready to send: its position in the run, its code and its compact JSON."""

    seq: int
    code: str
    body: bytes
    ref: Any = None


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason the API gave for rejecting a record."""

    field: str
    code: str
    description: str


class UploadListener(Protocol):
    """Receives the outcome of every item and an event for every HTTP attempt and retry."""

    def on_accepted(self, items: Sequence[Item]) -> None: ...
    def on_rejected(self, item: Item, errors: Sequence[FieldError]) -> None: ...
    def on_failed(self, items: Sequence[Item], reason: str) -> None: ...
    def on_retry(self, reason: str, delay_s: float) -> None: ...
    def on_request(self, status: int | None, elapsed_s: float) -> None: ...


@dataclass(kw_only=True)
class UploadResult:
    """Counters of one upload run."""

    requests: int = 0
    retries: int = 0
    batches: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    not_attempted: int = 0
    aborted: str | None = None
    settled_rate: float | None = None
    """Requests per second the run learned from the API's 429s (None when it never got one)."""


@dataclass(frozen=True)
class Clock:
    """Where the upload engine reads the time and how it waits; tests pass a fake one."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    """Seconds since the epoch, to say when the API asked to come back."""
    sleep: Callable[[float], Awaitable[None]] | None = None
    """None: asyncio's sleep, woken early when the run stops."""
