"""What the sandbox does to exercise a client: latency and jitter, random 500/503, a rate limit,
a daily quota, lost answers and a body size cap.

One ``Faults`` per app holds their state and the one seeded random source they draw from, in a
fixed order (jitter, then error, then drop) so a ``--seed`` replays the same run.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request

from .settings import SandboxSettings

_SLEEP_SLICE_S = 0.05


class BodyTooLargeError(Exception):
    """A request body (or its Content-Length) over ``--max-body-bytes``."""


class RateLimiter:
    """A sliding window of arrivals: more than ``limit`` in a second are refused."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.window: collections.deque[float] = collections.deque()

    def check(self, arrived: float) -> int | None:
        """Seconds to wait when a request that arrived at ``arrived`` (monotonic) exceeds the
        limit, else None (and count it)."""
        limit = self.limit
        if limit is None:
            return None
        # Fractional limits below 1/s become "one request per 1/limit seconds".
        window_s, capacity = (1.0, int(limit)) if limit >= 1 else (1.0 / limit, 1)
        while self.window and self.window[0] <= arrived - window_s:
            self.window.popleft()
        if len(self.window) >= capacity:
            return max(1, math.ceil(self.window[0] + window_s - arrived))
        # Jittered latency can finish requests out of arrival order; keep the window sorted.
        bisect.insort(self.window, arrived)
        return None


class Faults:
    """The injected faults and enforced limits of one sandbox, with their state."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.seed)
        self.limiter = RateLimiter(settings.rate_limit)
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

    def respond_at(self, arrived: float) -> float | None:
        """When the answer to a request arrived at ``arrived`` may leave (latency plus jitter),
        or None when there is no latency."""
        s = self.settings
        if not (s.latency_ms or s.latency_jitter_ms):
            return None
        jitter = self.random.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0.0
        return arrived + (s.latency_ms + jitter) / 1000

    def rate_limited(self, arrived: float) -> int | None:
        """Seconds to wait when this request is over the rate limit, else None (and count it)."""
        return self.limiter.check(arrived)

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

    def injected_error(self) -> tuple[int, str] | None:
        """(status, code) of a random 500 or 503 at ``--error-rate``, or None."""
        rate = self.settings.error_rate
        if not rate or self.random.random() >= rate:
            return None
        if self.random.random() < 0.5:
            return 500, "internal_error"
        return 503, "service_unavailable"

    def drop_response(self) -> bool:
        """Whether to answer this accepted POST only after ``--drop-response-delay``."""
        rate = self.settings.drop_response_rate
        return bool(rate) and self.random.random() < rate

    async def read_body(self, request: Request) -> bytes:
        """The request body; BodyTooLargeError once it (or its Content-Length) exceeds the limit."""
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
            raise BodyTooLargeError
        return b"".join(chunks)
