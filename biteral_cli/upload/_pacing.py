"""How fast requests go: the --rate pacer, the rate learned from 429s, and the Retry-After gate.

Three independent brakes, each asked before every request: the ``Pacer`` spaces requests at
--rate; the ``RateLearner`` (the AWS SDKs' adaptive mode, with CUBIC's climb) paces at what the
API's 429s showed it takes; the ``RetryAfterGate`` holds every request while an answer's
Retry-After runs, and keeps the --max-wait budget of those pauses.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ._config import UploadSettings, format_duration

# Requests are spaced a little wider than 1/rate so that network jitter between our clock and the
# server's never squeezes rate+1 requests into one of its one-second windows.
RATE_SAFETY = 1.01


class Pacer:
    """Requests spaced evenly at the rate, and never more of them in a window than the rate allows."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: float | None = None
        self.next_at = 0.0
        self.recent: deque[float] = deque()
        self.set_rate(per_second)

    def set_rate(self, per_second: float) -> None:
        """Pace at a new rate from the last request on (the rate learner moves it)."""
        self.per_second = per_second
        self.interval = RATE_SAFETY / per_second
        # The guarantee: at most `burst` requests in any `window` seconds (for 20/s: 20 in 1.01 s),
        # the rule a server's sliding-window limit applies, whatever timers or stalls do.
        self.burst = max(1, int(per_second))
        self.window = self.burst / per_second * RATE_SAFETY
        self.recent = deque(list(self.recent)[-self.burst :], maxlen=self.burst)
        if self.last is not None:
            self.next_at = self.last + self.interval

    async def wait(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Return when this request may go out; claim its slot only then, never ahead of time.

        Claiming on arrival (not booking ahead) means waiters that wake together after the
        event loop stalled (a busy CPU, a slow disk) cannot all go out at once.
        """
        while True:
            now = self.clock()
            delay = self.next_at - now
            if len(self.recent) == self.burst:
                delay = max(delay, self.recent[0] + self.window - now)
            if delay <= 0:
                break
            await sleep(delay)
            if self.clock() - now < delay / 2:
                return  # woken early: the run is stopping, and the caller will not send
        # A little late keeps the schedule (timers always wake a little late); very late restarts it.
        start = self.next_at if now - self.next_at <= self.interval / 2 else now
        self.next_at = start + self.interval
        self.last = now
        self.recent.append(now)


class RateLearner:
    """Learns the API's rate limit from its 429s, like the adaptive retry mode of the AWS SDKs.

    Until the first 429 it does not limit. A 429 sets the ceiling to the rate the API was
    taking just before (requests sent within max(1 s, Retry-After) before the refused one, less
    those refused too) and drops the pace to ``BETA`` of it, once per episode (429s for requests
    sent before that drop are the same episode). Successes then climb back along CUBIC's curve:
    fast far below the ceiling, flat near it, then probing above it; at twice the ceiling without
    a 429 it stops limiting.

    Two deviations from the SDKs, both because each 429 also costs a shared pause of at least its
    Retry-After: the cubic's scale is relative to the ceiling, so the climb back takes
    ``RECOVERY_S`` at 5 requests a second as at 500 (their absolute constant climbs back to a 5/s
    ceiling in 1.5 s and probes past it every few seconds: a 429 and a pause every few seconds);
    and the drop is to 0.9 of the ceiling, not 0.7: the ceiling is what the API took, not what we
    asked, and the pause has already emptied its window, so the drop only covers the measuring
    error. On a virtual clock against the sandbox's rule, 92-94% of a 5/s, 20/s or 50/s limit
    is used (tests/test_uploader.py; real-time figures in BENCHMARKS.md).
    """

    BETA = 0.9
    RECOVERY_S = 20.0
    PROBE_S = 10.0
    SKEW = 0.1
    MIN_RATE = 0.5
    #: Longest window of requests kept to measure the rate the API allowed.
    HISTORY_S = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.ceiling: float | None = None
        """The rate at the last 429, None before any."""
        self.rate: float | None = None
        """The pace now, None while not limiting."""
        self.dropped_at = 0.0
        self.sent: deque[float] = deque()
        self.refused: deque[float] = deque()
        self.pacer: Pacer | None = None
        self.episodes = 0
        self.episode: tuple[float, float, float | None] | None = None
        # (1 - BETA) / c == RECOVERY_S ** 3: the cubic is back at the ceiling after RECOVERY_S.
        self.cubic = (1 - self.BETA) / self.RECOVERY_S**3
        # ... and PROBE_S after that, a quarter above it.
        self.probe = 0.25 / self.PROBE_S**3

    async def wait(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Return when the learned pace lets the next request go (at once while not limiting)."""
        if self.pacer is not None:
            await self.pacer.wait(sleep)

    def on_sent(self, sent_at: float) -> None:
        """A request went out at ``sent_at``: it counts against the API's limit unless refused."""
        self.sent.append(sent_at)
        horizon = sent_at - self.HISTORY_S * (1 + self.SKEW)
        for times in (self.sent, self.refused):
            while times and times[0] < horizon:
                times.popleft()

    def on_accepted(self) -> None:
        """A request was answered without a 429: climb the curve."""
        if self.ceiling is None or self.rate is None:
            return
        t = self.clock() - self.dropped_at - self.RECOVERY_S
        # Past the ceiling the curve probes faster than it climbed back: a ceiling measured a little
        # low (another request in the API's window, a clock skew) is corrected within PROBE_S.
        scale = self.cubic if t < 0 else self.probe
        rate = max(self.MIN_RATE, self.ceiling * (1 + scale * t**3))
        if rate >= 2 * self.ceiling:
            self.rate, self.pacer = None, None  # far past the old limit without a 429: it is gone
            return
        self._pace(rate)

    def on_throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A request sent at ``sent_at`` was answered 429: lower the pace, once per episode."""
        self.refused.append(sent_at)
        if self.rate is not None and sent_at < self.dropped_at:
            # Sent before the last drop: the same episode. Its answers tell which of the requests
            # in flight the API took: measure the ceiling again, knowing more.
            if self.episode is not None:
                self._measure(*self.episode)
            return
        window = min(self.HISTORY_S, max(1.0, retry_after or 0.0))
        self.episode = (sent_at, window, self.rate)
        self.dropped_at = self.clock()
        self.episodes += 1
        self._measure(*self.episode)

    def _measure(self, sent_at: float, window: float, rate_before: float | None) -> None:
        """Set the ceiling to the requests the API took around ``sent_at``, and pace below it."""
        # Requests sent near the refused one, before or a little after (the order they reach the
        # API in is not quite the order we send them), less those refused; still unanswered ones
        # count. Counting one request too many costs one more 429; one too few, a slow run.
        skew = window * self.SKEW
        start, end = sent_at - window - skew, sent_at + skew
        taken = sum(1 for t in self.sent if start < t <= end) - sum(1 for t in self.refused if start < t <= end)
        seen = taken / window
        if rate_before is not None:
            seen = min(seen, rate_before)
        self.ceiling = max(self.MIN_RATE, seen)
        self._pace(max(self.MIN_RATE, self.ceiling * self.BETA))

    def _pace(self, rate: float) -> None:
        self.rate = rate
        if self.pacer is None:
            self.pacer = Pacer(rate, self.clock)
            self.pacer.last = self.clock()
            self.pacer.next_at = self.pacer.last + self.pacer.interval
        elif rate != self.pacer.per_second:
            self.pacer.set_rate(rate)

    @property
    def settled(self) -> float | None:
        """The rate the run settled on: the pace now, or the ceiling once it stopped limiting."""
        if self.ceiling is None:
            return None
        return round(self.rate if self.rate is not None else self.ceiling, 2)


class RetryAfterGate:
    """One gate every request waits at while a 429's (or a 5xx's) Retry-After runs, and the
    --max-wait budget of the pauses for 429s."""

    def __init__(self, settings: UploadSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.until = 0.0
        self.waited = 0.0
        """Seconds of pauses for 429s so far, against --max-wait."""
        self.streak = 0
        """429s in a row without Retry-After: their backoff grows."""

    def remaining(self) -> float:
        """Seconds until the gate opens (0 or less: open)."""
        return self.until - self.clock()

    def hold(self, seconds: float) -> None:
        """Keep the gate closed for at least ``seconds`` from now (a 5xx's Retry-After)."""
        self.until = max(self.until, self.clock() + seconds)

    def throttle(self, retry_after: float | None) -> tuple[float, bool]:
        """Close the gate for a 429: its Retry-After, or a backoff growing with 429s in a row
        without one; (the pause, False, with the gate untouched, when it would pass --max-wait)."""
        settings = self.settings
        if retry_after is None:
            self.streak += 1
            pause = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (self.streak - 1))
        else:
            self.streak = 0
            pause = retry_after
        # At least a little: a server answering 429 with Retry-After 0 forever must still use up the budget.
        pause = max(pause, settings.backoff_base_s, 0.01)
        now = self.clock()
        end = now + pause
        extra = max(0.0, end - max(self.until, now))
        if self.waited + extra > settings.max_wait_s:
            return pause, False
        self.waited += extra
        self.until = max(self.until, end)
        return pause, True


# Shared between check_status and upload so the /status call counts against the same quota.
_pacers: dict[tuple[str, float], Pacer] = {}


def pacer_for(settings: UploadSettings) -> Pacer | None:
    """The --rate pacer of this API (one per URL and rate, shared by every call), or None."""
    if settings.rate is None:
        return None
    key = (settings.api_url, settings.rate.per_second)
    pacer = _pacers.get(key)
    if pacer is None:
        pacer = _pacers[key] = Pacer(settings.rate.per_second)
    return pacer


def come_back(problem: str, pause: float, max_wait_s: float, waited_s: float, wall_now: float) -> str:
    """Why a 429 ends the run, and when the API said to come back (UTC)."""
    come_back = datetime.fromtimestamp(wall_now + pause, UTC).strftime("%Y-%m-%d %H:%M UTC")
    spent = f", after waiting {format_duration(waited_s)} already" if waited_s >= 1 else ""
    return (
        f"{problem}: the API asked to come back in {format_duration(pause)}, at {come_back}; that is "
        f"more than --max-wait {format_duration(max_wait_s)} allows{spent}. Run the same command with --resume then"
    )
