"""The upload engine: sends ready batches to ``POST /customers`` with retries, splitting and pacing.

Every item handed to :func:`upload` is reported exactly once to the listener (accepted, rejected
or failed); items are never re-serialized, and the API key never leaves the configured origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from biteral_cli import __version__
from biteral_cli.errors import (
    AbortError,
    ApiUnavailableError,
    AuthError,
    ConfigError,
    UsageError,
)

log = logging.getLogger("biteral_cli.upload")

_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_INDEXED_FIELD = re.compile(r"^\[(\d+)\]\.?(.*)$")
# Requests are spaced a little wider than 1/rate so that network jitter between our clock and the
# server's never squeezes rate+1 requests into one of its one-second windows.
_RATE_SAFETY = 1.01


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


@dataclass(frozen=True, slots=True)
class Item:
    """One customer ready to send: its position in the run, its code and its compact JSON."""

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


class RateLimitedError(AbortError):
    """The API answered 429 and asked for a longer wait than the run may spend (a used-up quota)."""


def _is_loopback(host: str) -> bool:
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
    endpoint: str = "/customers"
    """The path batches are posted to (``/products`` for --entity products)."""

    def __post_init__(self) -> None:
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", Secret(self.api_key))
        key = self.api_key.reveal()
        if not key:
            raise ConfigError("No API key: set BITERAL_API_KEY")
        if not key.isascii() or not key.isprintable() or key != key.strip():
            raise ConfigError("The API key in BITERAL_API_KEY contains spaces or characters a key cannot have")
        object.__setattr__(self, "api_url", _validate_url(self.api_url, self.allow_insecure_http))
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
    if parsed.scheme == "http" and not _is_loopback(parsed.host) and not allow_insecure_http:
        raise UsageError(
            f"--api-url uses plain http:// for {parsed.host}, which would send the API key "
            "unencrypted; use https:// or pass --allow-insecure-http"
        )
    return str(parsed).rstrip("/")


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


class _Pacer:
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
        self.interval = _RATE_SAFETY / per_second
        # The guarantee: at most `burst` requests in any `window` seconds (for 20/s: 20 in 1.01 s),
        # the rule a server's sliding-window limit applies, whatever timers or stalls do.
        self.burst = max(1, int(per_second))
        self.window = self.burst / per_second * _RATE_SAFETY
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
        self.pacer: _Pacer | None = None
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
            self.pacer = _Pacer(rate, self.clock)
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


# Shared between check_status and upload so the /status call counts against the same quota.
_pacers: dict[tuple[str, float], _Pacer] = {}


def _pacer_for(settings: UploadSettings) -> _Pacer | None:
    if settings.rate is None:
        return None
    key = (settings.api_url, settings.rate.per_second)
    pacer = _pacers.get(key)
    if pacer is None:
        pacer = _pacers[key] = _Pacer(settings.rate.per_second)
    return pacer


def _client(settings: UploadSettings) -> httpx.AsyncClient:
    headers = {
        "X-API-Key": settings.api_key.reveal(),
        "X-API-Version": "1",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": settings.user_agent,
    }
    loopback = _is_loopback(httpx.URL(settings.api_url).host)
    return httpx.AsyncClient(
        base_url=settings.api_url,
        headers=headers,
        timeout=httpx.Timeout(settings.timeout_s),
        follow_redirects=False,
        verify=True,
        # Proxy variables make no sense for a local sandbox and would route its key elsewhere.
        trust_env=not loopback,
        limits=httpx.Limits(
            max_connections=settings.concurrency + 1,
            max_keepalive_connections=settings.concurrency + 1,
        ),
    )


def _retry_after(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
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


def _body_code(response: httpx.Response) -> str | None:
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


def _field_errors(response: httpx.Response) -> list[tuple[int | None, FieldError]]:
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
        out.append(
            (
                index,
                FieldError(name, str(info.get("code") or ""), str(info.get("description") or "")),
            )
        )
    return out


def _come_back(problem: str, pause: float, max_wait_s: float, waited_s: float, wall_now: float) -> str:
    """Why a 429 ends the run, and when the API said to come back (UTC)."""
    come_back = datetime.fromtimestamp(wall_now + pause, UTC).strftime("%Y-%m-%d %H:%M UTC")
    spent = f", after waiting {format_duration(waited_s)} already" if waited_s >= 1 else ""
    return (
        f"{problem}: the API asked to come back in {format_duration(pause)}, at {come_back}; that is "
        f"more than --max-wait {format_duration(max_wait_s)} allows{spent}. Run the same command with --resume then"
    )


class _Run:
    """The state of one upload() call."""

    def __init__(
        self,
        settings: UploadSettings,
        listener: UploadListener,
        client: httpx.AsyncClient,
        stop: asyncio.Event | None,
        clock: Clock | None = None,
        result: UploadResult | None = None,
        learner: RateLearner | None = None,
    ) -> None:
        self.user_stop = stop
        self.settings = settings
        self.listener = listener
        self.client = client
        self.clock = clock or Clock()
        self.now = self.clock.monotonic
        self.pacer = _pacer_for(settings)
        self.learner = learner if learner is not None else RateLearner(self.now)
        self.sem = asyncio.Semaphore(settings.concurrency)
        self.result = result if result is not None else UploadResult()
        self.stopping = asyncio.Event()
        self.stop_reason: str | None = None
        self.error_kind: str | None = None  # "auth", "down", "quota", "listener"
        self.error: BaseException | None = None
        self.consecutive_failures = 0
        self.last_failure = ""
        self.gate_until = 0.0  # honours a Retry-After for every batch, not just the one that got it
        self.waited_429 = 0.0  # seconds of pauses for 429s so far, against --max-wait
        self.throttle_streak = 0  # 429s in a row without Retry-After: their backoff grows
        self.last_by_code: dict[str, asyncio.Event] = {}
        # The first request goes alone, so a wrong key or URL costs one request, not `concurrency`.
        self.probe_started = False
        self.probe_done = asyncio.Event()

    # -- stopping ------------------------------------------------------------------------------

    def stopped(self) -> bool:
        """Whether the run is stopping; notices the caller's stop event without waiting a turn."""
        if self.user_stop is not None and self.user_stop.is_set():
            self.halt("interrupted")
        return self.stopping.is_set()

    def halt(self, reason: str, kind: str | None = None, error: BaseException | None = None) -> None:
        """Stop taking and sending batches; the first reason wins."""
        if self.stopping.is_set():
            return
        self.stop_reason = reason
        self.error_kind = kind
        self.error = error
        self.stopping.set()

    async def sleep(self, delay: float) -> None:
        """Sleep, waking early when the run stops."""
        if delay <= 0:
            return
        if self.clock.sleep is not None:
            await self.clock.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)

    # -- listener (its exceptions stop the run instead of tearing it apart) -------------------

    def emit(self, name: str, *args: Any) -> None:
        try:
            getattr(self.listener, name)(*args)
        except Exception as exc:
            if self.error_kind is None:
                self.halt(f"stopped: {exc}", "listener", exc)
                # Already stopping because interrupted: the caller must still see this error.
                self.error, self.error_kind = exc, "listener"
            else:
                log.debug("listener raised again while stopping: %s", exc.__class__.__name__)

    def fail(self, items: Sequence[Item], reason: str, *, sent: bool) -> None:
        if not sent:
            self.result.not_attempted += len(items)
        self.emit("on_failed", items, reason)

    def stopped_reason(self, sent: bool) -> str:
        reason = self.stop_reason or "stopped"
        return f"{'not completed' if sent else 'not sent'}: {reason}"

    # -- one batch -----------------------------------------------------------------------------

    async def run_batch(self, items: Sequence[Item], deps: list[asyncio.Event], done: asyncio.Event) -> None:
        try:
            for dep in deps:
                if not dep.is_set():
                    await dep.wait()
            await self.send(items, sent=False)
        except Exception as exc:  # a bug must not lose items or hang the run
            log.debug("unexpected error in batch", exc_info=True)
            self.halt(f"internal error: {exc.__class__.__name__}", "listener", exc)
        finally:
            done.set()
            last = self.last_by_code
            for item in items:
                if last.get(item.code) is done:
                    del last[item.code]

    def count_outcome(self, ok: bool, reason: str = "") -> None:
        if ok:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        self.last_failure = reason
        if self.consecutive_failures >= self.settings.max_consecutive_failures:
            self.halt(
                f"the API failed {self.consecutive_failures} times in a row (last: {reason})",
                "down",
            )

    async def attempt(self, body: bytes) -> tuple[httpx.Response | None, str, float, float] | None:
        """One POST within the concurrency and rate limits: (response, problem, elapsed, sent_at),
        or None when the run stopped before it was sent."""
        if self.stopped():
            return None
        async with self.sem:
            # A 429 may close the gate while this request waits for its pace: check again after.
            while (gate := self.gate_until - self.now()) > 0 or not await self.paced():
                await self.sleep(gate)
                if self.stopped():
                    return None
            if self.stopped():
                return None
            sent_at = self.now()
            self.learner.on_sent(sent_at)
            started = time.perf_counter()
            try:
                response = await self.client.post(self.settings.endpoint, content=body)
            except httpx.TimeoutException:
                problem = f"no answer within {self.settings.timeout_s:g}s"
                return (None, problem, time.perf_counter() - started, sent_at)
            except httpx.TransportError as exc:
                problem = f"connection error ({exc.__class__.__name__})"
                return (None, problem, time.perf_counter() - started, sent_at)
            return response, "", time.perf_counter() - started, sent_at

    async def paced(self) -> bool:
        """Wait for the learned pace and the --rate pace; False when a 429 closed the gate meanwhile."""
        await self.learner.wait(self.sleep)
        if self.pacer is not None:
            await self.pacer.wait(self.sleep)
        return self.gate_until <= self.now()

    def throttled(self, sent_at: float, retry_after: float | None, problem: str) -> bool:
        """Pause every batch for a 429 (its Retry-After, or a growing backoff) and slow the run
        down; False, after stopping the run, when the pause would go beyond --max-wait."""
        settings = self.settings
        self.learner.on_throttled(sent_at, retry_after)
        if retry_after is None:
            self.throttle_streak += 1
            pause = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (self.throttle_streak - 1))
        else:
            self.throttle_streak = 0
            pause = retry_after
        # At least a little: a server answering 429 with Retry-After 0 forever must still use up the budget.
        pause = max(pause, settings.backoff_base_s, 0.01)
        now = self.now()
        end = now + pause
        extra = max(0.0, end - max(self.gate_until, now))
        if self.waited_429 + extra > settings.max_wait_s:
            self.halt(_come_back(problem, pause, settings.max_wait_s, self.waited_429, self.clock.wall()), "quota")
            return False
        self.waited_429 += extra
        self.gate_until = max(self.gate_until, end)
        return True

    async def send(self, items: Sequence[Item], *, sent: bool) -> None:
        """Send one (sub-)batch until every item in it has an outcome."""
        settings = self.settings
        body = b"[" + b",".join([item.body for item in items]) + b"]"
        attempt = 0
        waited = 0.0
        while True:
            probing = False
            if not self.probe_done.is_set():
                if self.probe_started:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.probe_done.wait(), settings.timeout_s)
                else:
                    self.probe_started = probing = True
            try:
                outcome = await self.attempt(body)
            finally:
                if probing:
                    self.probe_done.set()
            if outcome is None:
                self.fail(items, self.stopped_reason(sent), sent=sent)
                return
            sent = True
            response, problem, elapsed, sent_at = outcome
            status = response.status_code if response is not None else None
            self.result.requests += 1
            if status is not None:
                self.result.status_counts[status] = self.result.status_counts.get(status, 0) + 1
            log.debug(
                "POST %s -> %s in %.3fs (%d items, attempt %d)",
                self.settings.endpoint,
                status if status is not None else problem,
                elapsed,
                len(items),
                attempt + 1,
            )
            self.emit("on_request", status, elapsed)
            if status is not None and status != 429:
                self.learner.on_accepted()
                self.result.settled_rate = self.learner.settled

            if response is not None and 200 <= response.status_code < 300:
                self.count_outcome(True)
                self.emit("on_accepted", items)
                return
            if status in (401, 403):
                reason = f"the API refused the key {settings.api_key.masked()} ({status})"
                self.fail(items, reason, sent=True)
                self.halt(f"{reason}; check BITERAL_API_KEY", "auth")
                return
            if response is not None and status in (400, 413):
                await self.reject_or_split(items, response)
                return
            if response is not None and 300 <= response.status_code < 400:
                target = httpx.URL(response.headers.get("location", "")).host or "another place"
                reason = f"API answered a redirect to {target}; refusing to send the key there"
                self.fail(items, reason, sent=True)
                self.count_outcome(False, reason)
                return
            if response is not None and status not in _RETRYABLE:
                code = _body_code(response)
                reason = f"API answered {status}" + (f" ({code})" if code else "")
                self.fail(items, reason, sent=True)
                self.count_outcome(False, reason)
                return

            if response is not None:
                code = _body_code(response)
                problem = f"API answered {status}" + (f" ({code})" if code else "")
            hint = _retry_after(response, self.clock.wall) if response is not None else None
            if status == 429:
                # The API is answering, only slower than asked: wait as told, within --max-wait,
                # without using up this batch's --max-retries.
                if self.stopped() or not self.throttled(sent_at, hint, problem):
                    self.fail(items, self.stopped_reason(False), sent=False)
                    return
                self.result.settled_rate = self.learner.settled
                self.result.retries += 1
                self.emit("on_retry", problem, max(0.0, self.gate_until - self.now()))
                continue  # attempt() waits at the gate with every other batch
            # 5xx, timeout or connection error: retry with backoff, at most --max-retries times.
            if hint is not None:
                delay = hint
            else:
                # Equal jitter: at least half the exponential step, so the retries of one batch
                # span a known least time (an outage shorter than that is always ridden out).
                cap = min(settings.backoff_max_s, settings.backoff_base_s * 2**attempt)
                delay = random.uniform(cap / 2, cap)
            if attempt >= settings.max_retries or waited + delay > settings.max_wait_s:
                reason = f"gave up after {attempt + 1} attempts: {problem}"
                self.fail(items, reason, sent=True)
                self.count_outcome(False, problem)
                return
            if hint is not None:
                self.gate_until = max(self.gate_until, self.now() + hint)
            attempt += 1
            waited += delay
            self.result.retries += 1
            self.emit("on_retry", problem, delay)
            await self.sleep(delay)

    async def reject_or_split(self, items: Sequence[Item], response: httpx.Response) -> None:
        """Turn a 400/413 into per-item rejections, splitting the batch when the body can't say."""
        status = response.status_code
        if len(items) == 1:
            if status == 413:
                errors = [FieldError("", "too_large", "too large for the API (413)")]
            else:
                errors = [error for _, error in _field_errors(response)]
                if not errors:
                    code = _body_code(response) or "rejected"
                    errors = [FieldError("", code, "rejected by the API (400)")]
            self.count_outcome(True)
            self.emit("on_rejected", items[0], errors)
            return
        if status == 400:
            indexed = _field_errors(response)
            by_index: dict[int, list[FieldError]] = {}
            usable = bool(indexed)
            for index, error in indexed:
                if index is None or index >= len(items):
                    usable = False
                    break
                by_index.setdefault(index, []).append(error)
            if usable:
                self.count_outcome(True)
                for index in sorted(by_index):
                    self.emit("on_rejected", items[index], by_index[index])
                rest = [item for i, item in enumerate(items) if i not in by_index]
                if rest:
                    await self.send(rest, sent=True)
                return
        half = len(items) // 2
        await self.send(items[:half], sent=True)
        await self.send(items[half:], sent=True)

    # -- the whole run -------------------------------------------------------------------------

    def start_batch(self, items: Sequence[Item]) -> asyncio.Task[None]:
        done = asyncio.Event()
        deps: list[asyncio.Event] = []
        last = self.last_by_code
        for item in items:
            previous = last.get(item.code)
            if previous is not None and not previous.is_set() and previous not in deps:
                deps.append(previous)
            last[item.code] = done
        self.result.batches += 1
        return asyncio.create_task(self.run_batch(items, deps, done))

    async def feed(self, batches: Iterable[Sequence[Item]] | AsyncIterable[Sequence[Item]]) -> None:
        window = max(4 * self.settings.concurrency, 16)
        pending: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(self.stopping.wait())
        source = _aiter(batches)
        try:
            while not self.stopped():
                while len(pending) >= window and not self.stopped():
                    finished, _ = await asyncio.wait([*pending, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
                    pending -= finished
                if self.stopped():
                    break
                getter = asyncio.ensure_future(anext(source))
                await asyncio.wait([getter, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                try:
                    batch = getter.result()
                except StopAsyncIteration:
                    break
                if batch:
                    task = self.start_batch(batch)
                    pending.add(task)
                    task.add_done_callback(pending.discard)
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            stop_waiter.cancel()
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("closing the batch source failed", exc_info=True)


async def _aiter(
    batches: Iterable[Sequence[Item]] | AsyncIterable[Sequence[Item]],
) -> AsyncIterator[Sequence[Item]]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield batch
        return
    iterator: Iterator[Sequence[Item]] = iter(batches)
    for batch in iterator:
        yield batch


async def upload(
    batches: Iterable[Sequence[Item]] | AsyncIterable[Sequence[Item]],
    settings: UploadSettings,
    listener: UploadListener,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    result: UploadResult | None = None,
    learner: RateLearner | None = None,
) -> UploadResult:
    """Send every batch with at most `concurrency` requests in flight; report each item once.

    Each item taken from `batches` is reported exactly once to the listener (accepted, rejected
    or failed); items never taken because of an abort/stop are not reported at all (the caller
    counts them from the iterator); taken-but-unsent ones are failed and counted in not_attempted.
    Raises AuthError or ApiUnavailableError (after the listener has every outcome) when it stops
    because of the key or an API that keeps failing, RateLimitedError when a 429 asks for a longer
    wait than --max-wait leaves; a `stop` event returns aborted="interrupted". A `result` passed in
    is filled as the run goes, so the caller has the figures even when this raises. A `learner`
    passed in carries what check_status saw (its request counts against the API's limit too).
    """
    async with _client(settings) as client:
        run = _Run(settings, listener, client, stop, clock, result, learner)
        watcher: asyncio.Task[None] | None = None
        if stop is not None:

            async def watch() -> None:
                await stop.wait()
                run.halt("interrupted")

            watcher = asyncio.create_task(watch())
        try:
            await run.feed(batches)
        finally:
            if watcher is not None:
                watcher.cancel()
    result = run.result
    result.aborted = run.stop_reason
    if run.error_kind == "auth":
        raise AuthError(
            f"The API refused the key {settings.api_key.masked()}: check BITERAL_API_KEY "
            f"(and that it may ingest customers); {result.not_attempted} rows were not sent"
        )
    if run.error_kind == "quota":
        raise RateLimitedError(f"Stopped: {run.stop_reason} ({result.not_attempted} rows were not sent)")
    if run.error_kind == "down":
        raise ApiUnavailableError(
            f"Stopped: {run.stop_reason} at {_display(settings)}; {result.not_attempted} rows were not sent"
        )
    if run.error_kind == "listener" and run.error is not None:
        raise run.error
    return result


def _display(settings: UploadSettings) -> str:
    # api_url is validated to carry no user info, so it can be shown as is.
    return settings.api_url


async def check_status(settings: UploadSettings, learner: RateLearner | None = None) -> dict[str, Any]:
    """GET /status once and return its JSON; AuthError on 401/403, ApiUnavailableError otherwise.

    The AuthError message names BITERAL_API_KEY and shows only the masked key; the
    ApiUnavailableError (connection error, 5xx, timeout, redirect, non-JSON) names the URL, which
    never carries credentials. A 429 is retried after its Retry-After; RateLimitedError when that
    is longer than --max-wait (a used-up quota).
    """
    where = _display(settings)
    pacer = _pacer_for(settings)
    waited = 0.0
    async with _client(settings) as client:
        for attempt in range(settings.max_retries + 1):
            if pacer is not None:
                await pacer.wait()
            started = time.perf_counter()
            sent_at = 0.0
            if learner is not None:
                sent_at = learner.clock()
                learner.on_sent(sent_at)
            try:
                response = await client.get("/status")
            except httpx.TimeoutException as exc:
                raise ApiUnavailableError(f"The API at {where} did not answer within {settings.timeout_s:g}s") from exc
            except httpx.TransportError as exc:
                raise ApiUnavailableError(f"Cannot reach the API at {where} ({exc.__class__.__name__}: {exc})") from exc
            log.debug("GET /status -> %s in %.3fs", response.status_code, time.perf_counter() - started)
            status = response.status_code
            if learner is not None:
                if status == 429:
                    learner.on_throttled(sent_at, _retry_after(response))
                else:
                    learner.on_accepted()
            if status in (401, 403):
                raise AuthError(
                    f"The API at {where} refused the key {settings.api_key.masked()} ({status}): check BITERAL_API_KEY"
                )
            if status == 429:
                pause = _retry_after(response)
                pause = max(settings.backoff_base_s, pause if pause is not None else 1.0)
                if waited + pause > settings.max_wait_s:
                    code = _body_code(response)
                    problem = "GET /status: API answered 429" + (f" ({code})" if code else "")
                    raise RateLimitedError(_come_back(problem, pause, settings.max_wait_s, waited, time.time()))
                if attempt < settings.max_retries:
                    waited += pause
                    await asyncio.sleep(pause)
                    continue
            if 300 <= status < 400:
                target = httpx.URL(response.headers.get("location", "")).host or "another place"
                raise ApiUnavailableError(
                    f"The API at {where} answered a redirect to {target}; refusing to send the key "
                    "there (check --api-url)"
                )
            if status != 200:
                code = _body_code(response)
                raise ApiUnavailableError(
                    f"The API at {where} answered {status}"
                    + (f" ({code})" if code else "")
                    + " to GET /status; check --api-url"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise ApiUnavailableError(
                    f"{where} did not answer GET /status with JSON; is it the Biteral API?"
                ) from exc
            if not isinstance(data, dict):
                raise ApiUnavailableError(f"{where} answered GET /status with an unexpected body")
            return data
    raise ApiUnavailableError(f"The API at {where} kept answering 429 to GET /status")
