"""Behaviour of the upload engine against the local sandbox (real HTTP) and, for edge cases a
server can't easily produce, against respx mocks."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from biteral_cli.errors import (
    AbortError,
    ApiUnavailableError,
    AuthError,
    ConfigError,
    InputError,
    TooManyErrorsError,
    UsageError,
)
from biteral_cli.sandbox import RunningSandbox, SandboxSettings, running_sandbox
from biteral_cli.sandbox.faults import RateLimiter
from biteral_cli.upload import (
    Clock,
    FieldError,
    Item,
    RateLearner,
    RateLimit,
    RateLimitedError,
    Secret,
    UploadResult,
    UploadSettings,
    check_status,
    parse_duration,
    upload,
)
from biteral_cli.upload._pacing import Pacer

KEY = "sk_test_9f8e7d6c5b4aWXYZ"


class Recorder:
    """A listener that keeps everything it is told."""

    def __init__(self) -> None:
        self.accepted: list[Item] = []
        self.rejected: list[tuple[Item, list[FieldError]]] = []
        self.failed: list[tuple[Item, str]] = []
        self.retries: list[tuple[str, float]] = []
        self.requests: list[tuple[float, int | None]] = []

    def on_accepted(self, items: Sequence[Item]) -> None:
        self.accepted.extend(items)

    def on_rejected(self, item: Item, errors: Sequence[FieldError]) -> None:
        self.rejected.append((item, list(errors)))

    def on_failed(self, items: Sequence[Item], reason: str) -> None:
        self.failed.extend((item, reason) for item in items)

    def on_retry(self, reason: str, delay_s: float) -> None:
        self.retries.append((reason, delay_s))

    def on_request(self, status: int | None, elapsed_s: float) -> None:
        self.requests.append((time.monotonic(), status))

    def reported(self) -> list[int]:
        seqs = [i.seq for i in self.accepted] + [i.seq for i, _ in self.rejected]
        return sorted(seqs + [i.seq for i, _ in self.failed])

    def text(self) -> str:
        return repr((self.failed, self.rejected, self.retries))


def item(seq: int, code: str, **fields: Any) -> Item:
    payload = {"code": code, **fields}
    return Item(seq=seq, code=code, body=json.dumps(payload, separators=(",", ":")).encode())


def customers(n: int, prefix: str = "C", start: int = 0, **fields: Any) -> list[Item]:
    return [
        item(
            start + i,
            f"{prefix}{start + i}",
            yearBorn=1950 + (start + i) % 60,
            country="ES",
            **fields,
        )
        for i in range(n)
    ]


def chunks(items: Sequence[Item], size: int) -> list[list[Item]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def settings_for(sb: RunningSandbox, **overrides: Any) -> UploadSettings:
    values: dict[str, Any] = {
        "api_url": sb.url,
        "api_key": Secret(sb.api_key),
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5.0,
    }
    values.update(overrides)
    return UploadSettings(**values)


def fetch(sb: RunningSandbox, code: str) -> dict[str, Any] | None:
    """The stored payload of one customer (None when unknown), read back with GET."""
    return fetch_all(sb, [code])[code]


def fetch_all(sb: RunningSandbox, codes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """The stored payloads, read straight from the sandbox database (GET is subject to faults)."""
    with contextlib.closing(sqlite3.connect(sb.db)) as db:
        rows = dict(db.execute("SELECT code, payload FROM customers").fetchall())
    return {code: json.loads(rows[code]) if code in rows else None for code in codes}


def run(batches: Any, settings: UploadSettings, listener: Recorder, **kw: Any) -> UploadResult:
    return asyncio.run(upload(batches, settings, listener, **kw))


def assert_stored(sb: RunningSandbox, items: Sequence[Item]) -> None:
    stored = fetch_all(sb, [it.code for it in items])
    for it in items:
        got = stored[it.code]
        assert got is not None, it.code
        assert got["yearBorn"] == json.loads(it.body)["yearBorn"]
        assert got["country"] == "ESP"


# -- small types ----------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret(KEY)
    assert repr(secret) == str(secret) == f"{secret}" == "****WXYZ" == secret.masked()
    assert secret.reveal() == KEY
    assert Secret("abc").masked() == "****"  # a short key is not half given away
    # The boundary, pinned (a mutant moved it): from 8 characters on, the last four are shown.
    assert (Secret("abcdefg").masked(), Secret("abcdefgh").masked()) == ("****", "****efgh")
    settings = UploadSettings(api_url="https://api.biteral.ai", api_key=secret)
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("20/s", 20.0), ("20/sec", 20.0), ("1200/min", 20.0), ("5", 5.0), (" 0.5 / s ", 0.5)],
)
def test_rate_parse(text: str, per_second: float) -> None:
    assert RateLimit.parse(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "fast", "0/s", "-3/s", "10/day", "inf"])
def test_rate_parse_rejects_nonsense_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--rate"):
        RateLimit.parse(text)


def test_plain_http_refused_for_remote_hosts() -> None:
    with pytest.raises(UsageError, match="--allow-insecure-http"):
        UploadSettings(api_url="http://api.biteral.ai", api_key=Secret(KEY))
    ok = UploadSettings(api_url="http://api.biteral.ai/", api_key=Secret(KEY), allow_insecure_http=True)
    assert ok.api_url == "http://api.biteral.ai"
    for url in (
        "http://127.0.0.1:8080",
        "http://localhost:9",
        "http://[::1]:80",
        "https://x.example",
    ):
        UploadSettings(api_url=url, api_key=Secret(KEY))


@pytest.mark.parametrize("url", ["ftp://api.biteral.ai", "https://user:pw@api.biteral.ai", "nonsense"])
def test_bad_api_url_names_the_option(url: str) -> None:
    with pytest.raises(UsageError, match="--api-url"):
        UploadSettings(api_url=url, api_key=Secret(KEY))


def test_settings_bounds() -> None:
    with pytest.raises(UsageError, match="--concurrency"):
        UploadSettings(api_url="https://a.example", api_key=Secret(KEY), concurrency=0)
    with pytest.raises(UsageError, match="--max-retries"):
        UploadSettings(api_url="https://a.example", api_key=Secret(KEY), max_retries=101)
    with pytest.raises(ConfigError, match="BITERAL_API_KEY"):
        UploadSettings(api_url="https://a.example", api_key=Secret(""))


# -- against the sandbox --------------------------------------------------------------------------


@pytest.mark.slow
def test_clean_run_stores_every_record_and_sends_each_batch_once() -> None:
    items = customers(450)
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY)) as sb:
        result = run(chunks(items, 100), settings_for(sb), rec)
        assert_stored(sb, items)
    assert len(rec.accepted) == 450 and not rec.failed and not rec.rejected
    assert result.requests == result.batches == 5 and result.retries == 0
    assert result.status_counts == {200: 5} and result.aborted is None


@pytest.mark.slow
def test_random_500_503_are_retried_and_every_record_lands() -> None:
    items = customers(300)
    rec = Recorder()
    sandbox = SandboxSettings(api_key=KEY, error_rate=0.2, latency_ms=2, latency_jitter_ms=5, seed=7)
    with running_sandbox(sandbox) as sb:
        result = run(chunks(items, 10), settings_for(sb, max_retries=20), rec)
        assert_stored(sb, items)
    assert rec.reported() == list(range(300))
    assert len(rec.accepted) == 300
    assert result.retries > 0 and set(result.status_counts) <= {200, 500, 503}
    assert all(delay <= 0.05 for _, delay in rec.retries)


@pytest.mark.slow
def test_three_bad_records_among_100_use_per_item_errors_without_splitting() -> None:
    items = customers(100)
    bad = {7, 50, 93}
    items = [item(i, f"B{i}", country="Spainn") if i in bad else it for i, it in enumerate(items)]
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY)) as sb:
        result = run([items], settings_for(sb), rec)
        assert fetch(sb, "B7") is None
        assert_stored(sb, [it for it in items if it.seq not in bad])
    assert len(rec.accepted) == 97
    assert sorted(it.seq for it, _ in rec.rejected) == sorted(bad)
    for _, errors in rec.rejected:
        assert [e.field for e in errors] == ["country"] and errors[0].code == "unknown_country"
    assert result.requests == 2  # the batch, then the 97 valid ones again


@pytest.mark.slow
def test_without_per_item_errors_the_batch_is_split_until_bad_records_are_isolated() -> None:
    items = customers(100)
    bad = {7, 50, 93}
    items = [item(i, f"B{i}", country="Spainn") if i in bad else it for i, it in enumerate(items)]
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, per_item_errors=False)) as sb:
        result = run([items], settings_for(sb), rec)
        assert_stored(sb, [it for it in items if it.seq not in bad])
    assert len(rec.accepted) == 97
    assert sorted(it.seq for it, _ in rec.rejected) == sorted(bad)
    assert all(errors and errors[0].code == "unknown_country" for _, errors in rec.rejected)
    assert 2 < result.requests < 60
    assert rec.reported() == list(range(100))


@pytest.mark.slow
def test_413_splits_and_a_single_oversized_record_is_rejected() -> None:
    items = customers(40, metadata={"note": "x" * 200})
    huge = item(40, "HUGE", metadata={"note": "y" * 5000})
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, max_body_bytes=3000)) as sb:
        result = run([items[:20], [*items[20:], huge]], settings_for(sb), rec)
        assert_stored(sb, items)
    assert len(rec.accepted) == 40
    assert [(it.code, errs[0].code) for it, errs in rec.rejected] == [("HUGE", "too_large")]
    assert result.status_counts[413] >= 2


@pytest.mark.slow
def test_429_retry_after_is_honoured_and_all_records_land() -> None:
    # One request a second: the second request of the opening burst is refused on any machine.
    items = customers(12)
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, rate_limit=1)) as sb:
        result = run(chunks(items, 2), settings_for(sb, concurrency=4, max_retries=0), rec)
        assert_stored(sb, items)
        answered_429 = sb.stats.status_counts.get(429, 0)
    assert len(rec.accepted) == 12 and not rec.failed  # 429s used no retry: there are none to use
    assert result.status_counts.get(429, 0) == answered_429 > 0
    assert rec.retries and all(delay == pytest.approx(1.0, abs=0.1) for _, delay in rec.retries)
    assert result.settled_rate is not None and result.settled_rate <= 1.0


@pytest.mark.slow
def test_wrong_key_stops_after_one_request() -> None:
    items = customers(500)
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY)) as sb:
        bad = settings_for(sb, api_key=Secret("wrong-key-123456"))
        with pytest.raises(AuthError) as caught:
            run(chunks(items, 100), bad, rec)
        assert sb.stats.requests == 1
    message = str(caught.value)
    assert "BITERAL_API_KEY" in message and "wrong-key-123456" not in message
    assert "****3456" in message
    assert not rec.accepted and len(rec.requests) == 1
    # every item taken is accounted for; the four never sent say so
    assert len(rec.failed) == len(rec.reported())
    assert sum("not sent" in reason for _, reason in rec.failed) == len(rec.failed) - 100


@pytest.mark.slow
def test_without_the_probe_the_first_requests_leave_together() -> None:
    # The caller had the key accepted already (GET /status): no lone first request. The answers
    # take 500 ms, so all four requests are out before the first 401 comes back.
    items = customers(500)
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, latency_ms=500)) as sb:
        bad = settings_for(sb, api_key=Secret("wrong-key-123456"), concurrency=4)
        with pytest.raises(AuthError):
            run(chunks(items, 100), bad, rec, probe=False)
        assert sb.stats.requests == 4
    assert not rec.accepted and len(rec.requests) == 4
    assert len(rec.failed) == len(rec.reported())


@pytest.mark.slow
def test_duplicates_across_concurrent_batches_end_in_file_order() -> None:
    # 30 batches each carrying the same 10 codes: the last batch's values must win.
    batches = [[item(b * 10 + c, f"D{c}", yearBorn=1900 + b, country="ES") for c in range(10)] for b in range(30)]
    rec = Recorder()
    sandbox = SandboxSettings(api_key=KEY, latency_ms=1, latency_jitter_ms=15, error_rate=0.2, seed=3)
    with running_sandbox(sandbox) as sb:
        run(batches, settings_for(sb, concurrency=8, max_retries=20), rec)
        final = fetch_all(sb, [f"D{c}" for c in range(10)])
    assert len(rec.accepted) == 300
    assert all(stored is not None and stored["yearBorn"] == 1929 for stored in final.values())


@pytest.mark.slow
def test_interleaved_duplicates_do_not_block_unrelated_batches() -> None:
    # codes repeat every 3rd batch; all must end with the last occurrence's value
    batches = [[item(b * 5 + c, f"I{b % 3}-{c}", yearBorn=1800 + b, country="ES") for c in range(5)] for b in range(24)]
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, latency_jitter_ms=10, seed=1)) as sb:
        run(batches, settings_for(sb, concurrency=4), rec)
        years = fetch_all(sb, [f"I{k}-{c}" for k in range(3) for c in range(5)])
    assert {code: value["yearBorn"] for code, value in years.items() if value} == {
        f"I{k}-{c}": 1800 + 21 + k for k in range(3) for c in range(5)
    }


@pytest.mark.slow
def test_lost_responses_are_retried_safely() -> None:
    items = customers(60)
    rec = Recorder()
    sandbox = SandboxSettings(api_key=KEY, drop_response_rate=0.5, drop_response_delay_s=1.0, seed=11)
    with running_sandbox(sandbox) as sb:
        result = run(chunks(items, 5), settings_for(sb, timeout_s=0.3, max_retries=20), rec)
        assert_stored(sb, items)
    assert len(rec.accepted) == 60 and rec.reported() == list(range(60))
    assert result.retries > 0
    assert any("no answer" in reason for reason, _ in rec.retries)


@pytest.mark.slow
def test_stop_event_lets_in_flight_finish_and_sends_nothing_more() -> None:
    items = customers(1000)
    rec = Recorder()
    taken: list[int] = []

    def source() -> Iterator[list[Item]]:
        for batch in chunks(items, 10):
            taken.extend(it.seq for it in batch)
            yield batch

    async def main(sb: RunningSandbox) -> UploadResult:
        stop = asyncio.Event()

        class Stopper(Recorder):
            def on_accepted(self, batch: Sequence[Item]) -> None:
                super().on_accepted(batch)
                stop.set()

        nonlocal rec
        rec = Stopper()
        return await upload(source(), settings_for(sb, concurrency=2), rec, stop=stop)

    with running_sandbox(SandboxSettings(api_key=KEY, latency_ms=30)) as sb:
        result = asyncio.run(main(sb))
        stored = sb.stats.stored_writes
    assert result.aborted == "interrupted"
    assert len(taken) < len(items)
    assert rec.reported() == sorted(taken)  # everything taken is reported, nothing else
    assert stored == len(rec.accepted)
    assert 1 <= len(rec.accepted) <= 20  # at most the two requests in flight
    assert result.not_attempted == sum("not sent" in reason for _, reason in rec.failed)


@pytest.mark.slow
def test_api_down_stops_after_consecutive_failures_and_counts_unsent_rows() -> None:
    items = customers(500)
    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY, error_rate=1.0)) as sb:
        settings = settings_for(sb, max_consecutive_failures=2, max_retries=1, concurrency=1)
        with pytest.raises(ApiUnavailableError) as caught:
            run(chunks(items, 10), settings, rec)
        sent_batches = sb.stats.requests
    unsent = sum("not sent" in reason for _, reason in rec.failed)
    assert f"{unsent} rows were not sent" in str(caught.value)
    assert sent_batches <= 2 * 16  # stopped within the look-ahead window, far from all 50 batches
    assert unsent > 0 and len(rec.reported()) < 500
    assert not rec.accepted and len(rec.failed) == len(rec.reported())
    assert sorted(rec.reported()) == list(range(len(rec.reported())))


@pytest.mark.slow
def test_key_never_appears_in_output_or_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [*customers(30), item(30, "BAD", country="Spainn")]
    rec = Recorder()
    caplog.set_level(logging.DEBUG)
    with running_sandbox(SandboxSettings(api_key=KEY, error_rate=0.3, seed=5)) as sb:
        settings = settings_for(sb, max_retries=20)
        status = asyncio.run(check_status(settings))
        result = run(chunks(items, 8), settings, rec)
        with pytest.raises(AuthError) as caught:
            asyncio.run(check_status(settings_for(sb, api_key=Secret(KEY + "x"))))
    assert status["object"] == "status"
    assert any(r.name == "biteral_cli.upload" for r in caplog.records)
    out = capsys.readouterr()
    everything = "".join([caplog.text, out.out, out.err, rec.text(), repr(result), repr(settings), str(caught.value)])
    assert KEY not in everything and KEY[:-4] not in everything


@pytest.mark.slow
def test_check_status_with_wrong_key_and_with_nothing_listening() -> None:
    with running_sandbox(SandboxSettings(api_key=KEY)) as sb:
        with pytest.raises(AuthError) as caught:
            asyncio.run(check_status(settings_for(sb, api_key=Secret("nope-nope-1234"))))
        assert sb.stats.requests == 1
    assert "BITERAL_API_KEY" in str(caught.value) and "nope-nope" not in str(caught.value)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = UploadSettings(api_url=f"http://127.0.0.1:{port}", api_key=Secret(KEY), timeout_s=2)
    with pytest.raises(ApiUnavailableError, match=f"127.0.0.1:{port}"):
        asyncio.run(check_status(down))


# -- edge cases a real server does not easily produce (respx) -----------------------------------

API = "https://api.example.test"


def mocked_settings(**overrides: Any) -> UploadSettings:
    values: dict[str, Any] = {"api_url": API, "api_key": Secret(KEY), "backoff_base_s": 0.01}
    values.update(overrides)
    return UploadSettings(**values)


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_redirect_is_not_followed_and_the_key_stays_home(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{API}/customers").respond(302, headers={"Location": "https://evil.example.org/steal"})
    elsewhere = respx_mock.route(host="evil.example.org").respond(200)
    rec = Recorder()
    run([customers(3)], mocked_settings(), rec)
    assert not elsewhere.called
    assert [reason for _, reason in rec.failed] == [
        "API answered a redirect to evil.example.org; refusing to send the key there"
    ] * 3


@respx.mock(assert_all_mocked=True)
def test_403_aborts_like_401(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{API}/customers").respond(403, json={"object": "error"})
    rec = Recorder()
    with pytest.raises(AuthError, match="BITERAL_API_KEY"):
        run(chunks(customers(50), 5), mocked_settings(concurrency=1), rec)
    assert route.call_count == 1
    assert len(rec.reported()) == len(rec.failed)


@respx.mock(assert_all_mocked=True)
def test_request_body_and_headers(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{API}/v2/customers").respond(200, json={})
    items = customers(3)
    run([items], mocked_settings(api_url=f"{API}/v2/"), Recorder())
    request = route.calls.last.request
    assert request.content == b"[" + b",".join(it.body for it in items) + b"]"
    assert request.headers["X-API-Key"] == KEY and request.headers["X-API-Version"] == "1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("biteral-import/")


@respx.mock(assert_all_mocked=True)
def test_another_entity_posts_to_its_own_endpoint_and_names_it_when_the_key_is_refused(
    respx_mock: respx.MockRouter,
) -> None:
    products = respx_mock.post(f"{API}/products").respond(200, json={})
    rec = Recorder()
    run(chunks(customers(6), 3), mocked_settings(endpoint="/products"), rec)
    assert products.call_count == 2 and len(rec.accepted) == 6
    products.respond(401, json={"object": "error"})
    with pytest.raises(AuthError, match="may ingest products"):
        run([customers(2)], mocked_settings(endpoint="/products"), Recorder())


@pytest.mark.parametrize(
    "endpoint", ["customers", "/customers?x=1", "https://elsewhere.example/customers", "/../admin", ""]
)
def test_an_endpoint_must_be_a_plain_path(endpoint: str) -> None:
    # The key goes wherever the endpoint points: only a path below --api-url is taken.
    with pytest.raises(UsageError, match="endpoint"):
        mocked_settings(endpoint=endpoint)


@respx.mock(assert_all_mocked=True)
def test_retry_after_http_date_and_other_4xx(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{API}/customers")
    route.side_effect = [
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.ConnectError("refused"),
        httpx.Response(404, json={"object": "error", "payload": {"code": "not_found"}}),
    ]
    rec = Recorder()
    result = run([customers(2)], mocked_settings(), rec)
    assert next(delay for _, delay in rec.retries) == 0.0  # a date in the past: retry at once
    assert [reason for _, reason in rec.failed] == ["API answered 404 (not_found)"] * 2
    assert result.requests == 3 and result.retries == 2


@pytest.mark.slow
def test_async_source_and_a_listener_that_stops_the_run() -> None:
    # The lead's listener raises TooManyErrorsError on a rejection: the run stops, everything
    # taken is still reported, and the error reaches the caller.
    items = customers(200)
    items[3] = item(3, "BAD3", country="Spainn")
    taken: list[int] = []

    async def source() -> Any:
        for batch in chunks(items, 10):
            taken.extend(it.seq for it in batch)
            yield batch

    class Strict(Recorder):
        def on_rejected(self, item: Item, errors: Sequence[FieldError]) -> None:
            super().on_rejected(item, errors)
            raise TooManyErrorsError("more than 0 rows failed")

    rec = Strict()
    with running_sandbox(SandboxSettings(api_key=KEY, latency_ms=20)) as sb:
        with pytest.raises(TooManyErrorsError):
            run(source(), settings_for(sb, concurrency=1), rec)
        stored = sb.stats.stored_writes
    assert [it.code for it, _ in rec.rejected] == ["BAD3"]
    assert rec.reported() == sorted(taken) and len(taken) < 200
    assert stored == len(rec.accepted)


@pytest.mark.slow
def test_a_source_that_breaks_midway_still_settles_what_was_taken() -> None:
    items = customers(50)

    def source() -> Iterator[list[Item]]:
        yield from chunks(items[:30], 10)
        raise InputError("line 31: broken")

    rec = Recorder()
    with running_sandbox(SandboxSettings(api_key=KEY)) as sb:
        with pytest.raises(InputError, match="line 31"):
            run(source(), settings_for(sb), rec)
        assert_stored(sb, items[:30])
    assert len(rec.accepted) == 30 and rec.reported() == list(range(30))


# -- pacing, rate learning and 429s on a virtual clock (no test here reads the real clock) ------------


class VirtualTime:
    """A clock for the upload engine that jumps ahead whenever every task waits on it.

    ``sleep`` parks the caller until the virtual time reaches its wake-up; ``run`` drives a
    coroutine, advancing the time to the next wake-up each time nothing else can run. Against
    respx mocks (no real I/O) the schedule, and so every figure, is the same on every machine.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.t = start
        self.sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self.order = itertools.count()
        self.stalls: list[tuple[float, float]] = []

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_796_000_000.0 + self.t  # 2026-11-30 in UTC, give or take

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.sleepers, (self.t + delay, next(self.order), future))
        await future

    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, wall=self.wall, sleep=self.sleep)

    def run(self, main: Any) -> Any:
        async def drive() -> Any:
            task = asyncio.ensure_future(main)
            for _ in range(1_000_000):  # bounded: a hung engine fails the test instead of the suite
                for _ in range(30):  # let everything that can run, run
                    await asyncio.sleep(0)
                if task.done():
                    return task.result()
                if not self.sleepers:
                    continue
                wake, _, future = heapq.heappop(self.sleepers)
                for start, length in list(self.stalls):
                    if start <= wake:  # the event loop froze: time passed, nobody ran
                        self.t = max(self.t, start) + length
                        self.stalls.remove((start, length))
                self.t = max(self.t, wake)
                future.set_result(None)
            raise AssertionError("the upload did not finish")

        return asyncio.run(drive())


class SlidingWindowApi:
    """A respx handler limiting requests like the sandbox does (its own rule), on virtual time."""

    def __init__(self, vt: VirtualTime, limit: float) -> None:
        self.vt = vt
        self.limiter = RateLimiter(limit)
        self.arrivals: list[tuple[float, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        retry_after = self.limiter.check(self.vt.t)
        status = 200 if retry_after is None else 429
        self.arrivals.append((self.vt.t, status))
        if retry_after is not None:
            return httpx.Response(429, headers={"Retry-After": str(retry_after)}, json={})
        return httpx.Response(200, json={"object": "customers_ingest"})

    def count(self, status: int) -> int:
        return sum(1 for _, s in self.arrivals if s == status)


def paced_times(rate: float, n: int, stalls: Sequence[tuple[float, float]]) -> list[float]:
    """Virtual times at which n requests waiting together on a pacer at ``rate`` go out, while
    the event loop freezes for (offset from start, length) ``stalls``."""
    vt = VirtualTime()
    pacer = Pacer(rate, vt.monotonic)
    sent: list[float] = []

    async def one() -> None:
        await pacer.wait(vt.sleep)
        sent.append(vt.t)

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(n)))

    vt.stalls = [(vt.t + offset, length) for offset, length in stalls]
    vt.run(main())
    return sent


def test_pacer_keeps_its_spacing_after_the_event_loop_stalls() -> None:
    sent = paced_times(10, 8, [(0.15, 0.35)])  # booked slots pass while the loop is frozen
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) == 8 and min(gaps) >= 0.1  # a 10/s quota is never exceeded, even right after it


def test_pacer_never_puts_more_requests_in_a_second_than_the_rate_and_uses_most_of_it() -> None:
    pauses = (0.05, 0.13, 0.02, 0.17, 0.09, 0.11)
    sent = paced_times(5, 40, [(0.2 * k + 0.07, pause) for k, pause in enumerate(pauses)])
    busiest = max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent)
    assert busiest <= 5
    assert (len(sent) - 1) / (sent[-1] - sent[0]) > 4.5  # and the quota is still used


def test_rate_learner_drops_once_per_episode_and_climbs_back_to_the_ceiling() -> None:
    vt = VirtualTime()
    learner = RateLearner(vt.monotonic)
    assert learner.rate is None and learner.settled is None  # no limit before the first 429
    learner.on_sent(vt.t - 3)  # long gone from the API's window
    for k in range(6):
        learner.on_sent(vt.t - 0.5 + 0.1 * k)  # 5 taken in the last second, and the one refused
    learner.on_throttled(vt.t - 0.5 + 0.1 * 5, 1.0)
    assert learner.ceiling == pytest.approx(5.0)
    assert learner.rate == pytest.approx(5.0 * RateLearner.BETA)
    sent_before = vt.t - 0.01
    vt.t += 0.1
    learner.on_sent(sent_before)
    learner.on_throttled(sent_before, 1.0)  # in flight when the first 429 came: same episode
    assert learner.rate == pytest.approx(5.0 * RateLearner.BETA) and learner.episodes == 1
    vt.t += RateLearner.RECOVERY_S / 2
    learner.on_accepted()
    assert 5.0 * RateLearner.BETA < learner.rate < 5.0  # climbing back, still below the ceiling
    vt.t += RateLearner.RECOVERY_S / 2
    learner.on_accepted()
    assert learner.rate == pytest.approx(5.0, abs=0.01)  # flat at the ceiling
    vt.t += RateLearner.PROBE_S / 2
    learner.on_accepted()
    assert 5.0 < learner.rate < 5.2  # then probing above it, gently at first
    vt.t += RateLearner.PROBE_S / 2
    learner.on_accepted()
    assert learner.rate == pytest.approx(5.0 * 1.25, rel=0.02)  # a quarter above it after PROBE_S
    vt.t += 3 * RateLearner.RECOVERY_S
    learner.on_accepted()
    assert learner.rate is None and learner.settled == pytest.approx(5.0)  # the limit is gone


def virtual_upload(
    vt: VirtualTime, handler: Any, batches: Any, rec: Recorder, **overrides: Any
) -> tuple[UploadResult, BaseException | None]:
    """Upload through respx to ``handler`` with the engine on virtual time; (result, error raised)."""
    result = UploadResult()
    error: BaseException | None = None
    with respx.mock(assert_all_mocked=True) as mock:
        mock.post(f"{API}/customers").mock(side_effect=handler)
        try:
            vt.run(upload(batches, mocked_settings(**overrides), rec, clock=vt.clock(), result=result))
        except AbortError as exc:
            error = exc
    return result, error


@pytest.mark.slow
def test_the_rate_limit_is_learned_with_few_429s_and_nothing_fails() -> None:
    # Issue 12's scenario: a 5/s limit, 3,000 customers in batches of 20, default options.
    vt = VirtualTime()
    api = SlidingWindowApi(vt, 5)
    rec = Recorder()
    result, error = virtual_upload(vt, api, chunks(customers(3000), 20), rec)
    assert error is None and not rec.failed and len(rec.accepted) == 3000
    assert api.count(429) <= 0.05 * len(api.arrivals), api.count(429)
    accepted = [t for t, status in api.arrivals if status == 200]
    used = (len(accepted) - 1) / (accepted[-1] - accepted[0]) / 5
    assert used >= 0.9  # of the limit, in virtual seconds
    assert result.settled_rate is not None and 4.0 <= result.settled_rate <= 5.1


def test_retry_after_holds_back_every_batch_queued_behind() -> None:
    vt = VirtualTime()
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(vt.t)
        if len(sent) == 3:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={})
        return httpx.Response(200, json={})

    rec = Recorder()
    result, error = virtual_upload(vt, handler, chunks(customers(40), 2), rec, concurrency=1)
    assert error is None and len(rec.accepted) == 40
    throttled_at = sent[2]
    assert all(t >= throttled_at + 7 for t in sent[3:])  # the 19 batches behind waited too
    assert result.retries == 1


@pytest.mark.slow
def test_a_429_does_not_use_up_the_batch_retries() -> None:
    vt = VirtualTime()
    calls = itertools.count()

    def handler(request: httpx.Request) -> httpx.Response:
        if next(calls) < 12:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={})
        return httpx.Response(200, json={})

    rec = Recorder()
    result, error = virtual_upload(vt, handler, [customers(5)], rec, max_retries=2)
    assert error is None and len(rec.accepted) == 5 and not rec.failed
    assert result.retries == 12 and result.status_counts == {429: 12, 200: 1}


def test_a_retry_after_beyond_max_wait_stops_the_run_saying_when_to_come_back() -> None:
    vt = VirtualTime()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"Retry-After": str(20 * 3600)},
            json={"object": "error", "payload": {"code": "quota_exceeded"}},
        )

    rec = Recorder()
    result, error = virtual_upload(vt, handler, chunks(customers(30), 5), rec, concurrency=2)
    assert isinstance(error, RateLimitedError)
    come_back = datetime.fromtimestamp(vt.wall() + 20 * 3600, UTC).strftime("%Y-%m-%d %H:%M UTC")
    message = str(error)
    assert "quota_exceeded" in message and f"come back in 20h 00m, at {come_back}" in message
    assert "--max-wait 10m" in message and "--resume" in message
    # No row failed for it: everything taken is reported as not sent, nothing as given up.
    assert not rec.accepted and rec.failed
    assert all(reason.startswith("not sent: ") for _, reason in rec.failed)
    assert result.not_attempted == len(rec.failed)
    assert vt.t < 1_000.0 + 1  # it stopped at once instead of waiting


def test_429_waits_count_against_one_budget_for_the_whole_run() -> None:
    vt = VirtualTime()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "60"}, json={})

    rec = Recorder()
    start = vt.t
    _, error = virtual_upload(vt, handler, chunks(customers(20), 5), rec, max_wait_s=150)
    assert isinstance(error, RateLimitedError) and "after waiting 2m already" in str(error)
    assert 120 <= vt.t - start < 150  # two pauses of 60 s fit in 150 s, the third does not
    assert all(reason.startswith("not sent: ") for _, reason in rec.failed) and len(rec.failed) == 20


@pytest.mark.parametrize(("text", "seconds"), [("600", 600), ("90s", 90), ("10m", 600), ("1h", 3600), (" 2 min ", 120)])
def test_max_wait_reads_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--max-wait") == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "10d", "1h30"])
def test_max_wait_refuses_nonsense_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--max-wait"):
        parse_duration(text, "--max-wait")


@pytest.mark.slow
@respx.mock(assert_all_mocked=True)
def test_a_used_up_quota_at_get_status_stops_before_sending(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{API}/status").respond(
        429, headers={"Retry-After": "7200"}, json={"object": "error", "payload": {"code": "quota_exceeded"}}
    )
    with pytest.raises(RateLimitedError, match=r"quota_exceeded\): the API asked to come back in 2h 00m, at .* UTC"):
        asyncio.run(check_status(mocked_settings()))
    assert respx_mock.calls.call_count == 1  # no waiting hours, no retrying into the quota


# -- found by tools/mutation.py: each test below failed on a mutant that had survived -------------


def _bad_country(index: int) -> httpx.Response:
    error = {"field": f"[{index}].country", "code": "invalid_country", "description": "not a country"}
    return httpx.Response(400, json={"object": "error", "payload": {"fieldErrors": [{"payload": error}]}})


@respx.mock(assert_all_mocked=True)
def test_batches_rejected_for_their_data_never_count_as_an_api_outage(respx_mock: respx.MockRouter) -> None:
    # Every batch names its first customer as bad: each customer ends rejected, one by one, and a
    # long run of 400s is bad data, not the API failing "N times in a row".
    respx_mock.post(f"{API}/customers").mock(side_effect=lambda request: _bad_country(0))
    rec = Recorder()
    result = run(chunks(customers(36), 3), mocked_settings(concurrency=1, max_consecutive_failures=2), rec)
    assert not rec.failed and not rec.accepted
    assert sorted(i.seq for i, _ in rec.rejected) == list(range(36))
    assert {(e.field, e.code, e.description) for _, errors in rec.rejected for e in errors} == {
        ("country", "invalid_country", "not a country")
    }
    assert result.status_counts == {400: 36}


@respx.mock(assert_all_mocked=True)
def test_an_error_naming_an_index_past_the_batch_splits_it_instead_of_crashing(respx_mock: respx.MockRouter) -> None:
    respx_mock.post(f"{API}/customers").mock(side_effect=lambda request: _bad_country(3))
    rec = Recorder()
    run([customers(3)], mocked_settings(concurrency=1), rec)
    assert sorted(i.seq for i, _ in rec.rejected) == [0, 1, 2] and not rec.failed


@respx.mock(assert_all_mocked=True)
def test_the_run_stops_after_exactly_max_consecutive_failures(respx_mock: respx.MockRouter) -> None:
    answers = itertools.chain([httpx.Response(200, json={})], itertools.repeat(httpx.Response(500, json={})))
    route = respx_mock.post(f"{API}/customers").mock(side_effect=lambda request: next(answers))
    rec = Recorder()
    settings = mocked_settings(concurrency=1, max_retries=0, max_consecutive_failures=3)
    with pytest.raises(ApiUnavailableError, match="3 times in a row"):
        run(chunks(customers(40), 2), settings, rec)
    assert route.call_count == 1 + 3  # one success, then three failures in a row, and no more
    assert len(rec.accepted) == 2
