"""The upload engine: batches in, one outcome per item out, with `concurrency` requests in flight.

Batches are taken lazily from the caller's iterable, a bounded window ahead of the requests; a
batch waits for every earlier batch holding one of its codes (the API keeps the last write of a
code, so writes of one code must arrive in file order). Each answer is classified
(``_responses``): accepted, rejected (split until the API says which items), retried with backoff
(5xx, no answer), held at the Retry-After gate (429, within --max-wait) or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import httpx

from biteral_cli.errors import ApiUnavailableError, AuthError

from ._client import ApiClient
from ._config import UploadSettings
from ._exceptions import AnswerTimeoutError, NoAnswerError, RateLimitedError
from ._models import Clock, FieldError, Item, UploadListener, UploadResult
from ._pacing import RateLearner, RetryAfterGate, come_back, pacer_for
from ._responses import Verdict, body_code, classify, describe, field_errors, redirect_target, retry_after

log = logging.getLogger("biteral_cli.upload")

#: One HTTP attempt: (the answer or None, why there was none, seconds it took, when it was sent).
_Attempt = tuple[httpx.Response | None, str, float, float]


class _Upload:
    """The state of one upload() call."""

    def __init__(
        self,
        settings: UploadSettings,
        listener: UploadListener,
        client: ApiClient,
        stop: asyncio.Event | None,
        clock: Clock | None = None,
        result: UploadResult | None = None,
        learner: RateLearner | None = None,
        probe: bool = True,
    ) -> None:
        self.user_stop = stop
        self.settings = settings
        self.listener = listener
        self.client = client
        self.clock = clock or Clock()
        self.now = self.clock.monotonic
        self.pacer = pacer_for(settings)
        self.learner = learner if learner is not None else RateLearner(self.now)
        self.gate = RetryAfterGate(settings, self.now)
        self.sem = asyncio.Semaphore(settings.concurrency)
        self.result = result if result is not None else UploadResult()
        self.stopping = asyncio.Event()
        self.stop_reason: str | None = None
        self.error_kind: str | None = None  # "auth", "down", "quota", "listener"
        self.error: BaseException | None = None
        self.consecutive_failures = 0
        self.last_by_code: dict[str, asyncio.Event] = {}
        # Requests being written: taking the next batch (the caller's per-row work, milliseconds
        # of CPU in this event loop) waits until none is, so it never holds a request back.
        self.writing = 0
        self.all_written = asyncio.Event()
        self.all_written.set()
        # The first request goes alone, so a wrong key or URL costs one request, not `concurrency`.
        self.probe_started = False
        self.probe_done = asyncio.Event()
        if not probe:
            self.probe_started = True
            self.probe_done.set()

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
        """Tell the listener; an exception it raises stops the run and is raised by upload()."""
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
        """Report items failed; those never sent also count as not attempted."""
        if not sent:
            self.result.not_attempted += len(items)
        self.emit("on_failed", items, reason)

    def stopped_reason(self, sent: bool) -> str:
        """Why items of a stopping run failed."""
        reason = self.stop_reason or "stopped"
        return f"{'not completed' if sent else 'not sent'}: {reason}"

    def count_outcome(self, ok: bool, reason: str = "") -> None:
        """Count a batch's end; --max-consecutive-failures of them failing in a row stop the run."""
        if ok:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.settings.max_consecutive_failures:
            self.halt(f"the API failed {self.consecutive_failures} times in a row (last: {reason})", "down")

    # -- one request ---------------------------------------------------------------------------

    async def attempt(self, body: bytes) -> _Attempt | None:
        """One POST within the concurrency and rate limits, or None when the run stopped before
        it was sent."""
        if self.stopped():
            return None
        async with self.sem:
            # A 429 may close the gate while this request waits for its pace: check again after.
            while (gate := self.gate.remaining()) > 0 or not await self.paced():
                await self.sleep(gate)
                if self.stopped():
                    return None
            if self.stopped():
                return None
            sent_at = self.now()
            self.learner.on_sent(sent_at)
            started = time.perf_counter()
            written = self.writing_one()
            try:
                response = await self.client.request("POST", self.settings.endpoint, body, on_written=written)
            except AnswerTimeoutError:
                problem = f"no answer within {self.settings.timeout_s:g}s"
                return None, problem, time.perf_counter() - started, sent_at
            except NoAnswerError as exc:
                problem = f"connection error ({exc.__cause__.__class__.__name__})"
                return None, problem, time.perf_counter() - started, sent_at
            finally:
                written()
            return response, "", time.perf_counter() - started, sent_at

    def writing_one(self) -> Callable[[], None]:
        """Count a request being written; the function returned says it is written (once)."""
        self.writing += 1
        self.all_written.clear()
        pending = True

        def written() -> None:
            nonlocal pending
            if pending:
                pending = False
                self.writing -= 1
                if not self.writing:
                    self.all_written.set()

        return written

    async def requests_written(self, stop_waiter: asyncio.Future[Any]) -> None:
        """Return once every request started (batches just started included) is on the wire, or
        the run stops."""
        await asyncio.sleep(0)  # let batches just started reach their request
        if self.writing and not self.stopped():
            waiter = asyncio.ensure_future(self.all_written.wait())
            await asyncio.wait([waiter, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def paced(self) -> bool:
        """Wait for the learned pace and the --rate pace; False when a 429 closed the gate meanwhile."""
        await self.learner.wait(self.sleep)
        if self.pacer is not None:
            await self.pacer.wait(self.sleep)
        return self.gate.remaining() <= 0

    def throttled(self, sent_at: float, hint: float | None, problem: str) -> bool:
        """Pause every batch for a 429 and slow the run down; False, after stopping the run, when
        the pause would go beyond --max-wait."""
        self.learner.on_throttled(sent_at, hint)
        pause, within = self.gate.throttle(hint)
        if not within:
            wall = self.clock.wall()
            self.halt(come_back(problem, pause, self.settings.max_wait_s, self.gate.waited, wall), "quota")
        return within

    def record(self, items: Sequence[Item], outcome: _Attempt, attempt: int) -> int | None:
        """Count an attempt and tell the listener and the learner; its status (None: no answer)."""
        response, problem, elapsed, _ = outcome
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
        return status

    # -- one batch -----------------------------------------------------------------------------

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
            self.record(items, outcome, attempt)
            response, problem, _, sent_at = outcome
            verdict = classify(response.status_code) if response is not None else Verdict.RETRY
            if response is not None and verdict is not Verdict.RETRY and verdict is not Verdict.THROTTLED:
                await self.settle(items, response, verdict)
                return
            if response is not None:
                problem = describe(response)
            hint = retry_after(response, self.clock.wall) if response is not None else None
            if verdict is Verdict.THROTTLED:
                # The API is answering, only slower than asked: wait as told, within --max-wait,
                # without using up this batch's --max-retries.
                if self.stopped() or not self.throttled(sent_at, hint, problem):
                    self.fail(items, self.stopped_reason(False), sent=False)
                    return
                self.result.settled_rate = self.learner.settled
                self.result.retries += 1
                self.emit("on_retry", problem, max(0.0, self.gate.remaining()))
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
                self.fail(items, f"gave up after {attempt + 1} attempts: {problem}", sent=True)
                self.count_outcome(False, problem)
                return
            if hint is not None:
                self.gate.hold(hint)
            attempt += 1
            waited += delay
            self.result.retries += 1
            self.emit("on_retry", problem, delay)
            await self.sleep(delay)

    async def settle(self, items: Sequence[Item], response: httpx.Response, verdict: Verdict) -> None:
        """Give every item of a batch its outcome from an answer that is not to be retried."""
        status = response.status_code
        if verdict is Verdict.ACCEPTED:
            self.count_outcome(True)
            self.emit("on_accepted", items)
        elif verdict is Verdict.AUTH:
            reason = f"the API refused the key {self.settings.api_key.masked()} ({status})"
            self.fail(items, reason, sent=True)
            self.halt(f"{reason}; check BITERAL_API_KEY", "auth")
        elif verdict is Verdict.REJECTED:
            await self.reject_or_split(items, response)
        else:
            if verdict is Verdict.REDIRECT:
                reason = f"API answered a redirect to {redirect_target(response)}; refusing to send the key there"
            else:
                reason = describe(response)
            self.fail(items, reason, sent=True)
            self.count_outcome(False, reason)

    async def reject_or_split(self, items: Sequence[Item], response: httpx.Response) -> None:
        """Turn a 400/413 into per-item rejections, splitting the batch when the body can't say."""
        status = response.status_code
        if len(items) == 1:
            if status == 413:
                errors = [FieldError("", "too_large", "too large for the API (413)")]
            else:
                errors = [error for _, error in field_errors(response)]
                if not errors:
                    code = body_code(response) or "rejected"
                    errors = [FieldError("", code, "rejected by the API (400)")]
            self.count_outcome(True)
            self.emit("on_rejected", items[0], errors)
            return
        if status == 400:
            indexed = field_errors(response)
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

    async def run_batch(self, items: Sequence[Item], deps: list[asyncio.Event], done: asyncio.Event) -> None:
        """Send a batch once the batches it depends on are done; never lose an item to a bug."""
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

    # -- the whole run -------------------------------------------------------------------------

    def start_batch(self, items: Sequence[Item]) -> asyncio.Task[None]:
        """Start a batch's task, after the batches that hold one of its codes."""
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
        """Take batches while the run goes on, a bounded window ahead; wait for every one started."""
        window = max(4 * self.settings.concurrency, 16)
        pending: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(self.stopping.wait())
        source = _aiter(batches)
        try:
            while not self.stopped():
                while len(pending) >= window and not self.stopped():
                    finished, _ = await asyncio.wait([*pending, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
                    pending -= finished
                await self.requests_written(stop_waiter)
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
    probe: bool = True,
) -> UploadResult:
    """Send every batch to ``settings.endpoint`` with at most `concurrency` requests in flight;
    report each item once.

    Each item taken from `batches` is reported exactly once to the listener (accepted, rejected
    or failed); items never taken because of an abort/stop are not reported at all (the caller
    counts them from the iterator); taken-but-unsent ones are failed and counted in not_attempted.
    Raises AuthError or ApiUnavailableError (after the listener has every outcome) when it stops
    because of the key or an API that keeps failing, RateLimitedError when a 429 asks for a longer
    wait than --max-wait leaves; a `stop` event returns aborted="interrupted". A `result` passed in
    is filled as the run goes, so the caller has the figures even when this raises. A `learner`
    passed in carries what check_status saw (its request counts against the API's limit too).
    The first request goes alone, so that a wrong key or URL costs one request; ``probe=False``
    when the caller has just had the key accepted (check_status): the first ``concurrency``
    requests then leave together (at concurrency 16 the lone first request cost a 16-wide round
    of 13 for 20,000 rows).
    """
    async with ApiClient(settings) as client:
        run = _Upload(settings, listener, client, stop, clock, result, learner, probe)
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
            f"(and that it may ingest {settings.entity}); {result.not_attempted} rows were not sent"
        )
    if run.error_kind == "quota":
        raise RateLimitedError(f"Stopped: {run.stop_reason} ({result.not_attempted} rows were not sent)")
    if run.error_kind == "down":
        # api_url is validated to carry no user info, so it can be shown as is.
        raise ApiUnavailableError(
            f"Stopped: {run.stop_reason} at {settings.api_url}; {result.not_attempted} rows were not sent"
        )
    if run.error_kind == "listener" and run.error is not None:
        raise run.error
    return result
