"""The sandbox's Starlette app and its server: the key check, /status, the entities' routes, and
``start_sandbox``/``serve`` running it on uvicorn in a background thread.

Every entity route goes through ``register_routes``: the key and version check, the daily quota,
the rate limit and injected errors before the handler; the latency (counted from arrival, the
handler's work inside it) and lost answers after. An entity is plugged in with one call:
``register_entity(app, CUSTOMERS)`` (see ``ENTITIES``).
"""

from __future__ import annotations

import hmac
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httptools  # noqa: F401  (uvicorn's C HTTP parser: a fifth less CPU per request than h11)
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from biteral_cli.errors import UsageError

from .entities import CUSTOMERS, PRODUCTS, Entity, handle
from .settings import DEFAULT_API_KEY, SandboxSettings, SandboxStats
from .state import CLIENT_ID, PROJECT_ID, SandboxState
from .store import now_text
from .validation import bad_request, error
from .validation.places import warm_up

try:  # The C event loop: not built for Windows (nor PyPy), where asyncio's own serves.
    import uvloop  # noqa: F401

    _LOOP = "uvloop"
except ImportError:  # pragma: no cover - platform dependent
    _LOOP = "asyncio"

_STARTUP_WAIT_S = 10.0
_STOP_WAIT_S = 10.0

#: A route's own work, once the request passed the key check and the faults.
Handler = Callable[[Request, SandboxState], Awaitable[Response]]

#: The entities every sandbox serves. Another entity: its field rules in ``validation/<name>.py``,
#: an ``Entity`` in ``entities.py``, and one line here.
ENTITIES: tuple[Entity, ...] = (CUSTOMERS, PRODUCTS)


def guard(state: SandboxState, request: Request, *, inject_errors: bool) -> Response | None:
    """Auth, version, quota, rate limit and injected errors: a response to send, or None.

    Also fixes when the answer may leave (``answer_at``): the latency is the API's response
    time, and the work of a request happens within it. A real API works on concurrent requests
    in parallel; this single-threaded sandbox would otherwise queue them and add their work
    to one another's latency.
    """
    faults = state.faults
    # The limit counts requests when they arrive, as a real API does.
    arrived = time.monotonic()
    respond_at = faults.respond_at(arrived)
    if respond_at is not None:
        request.state.respond_at = respond_at
    key = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(key.encode(), state.settings.api_key.encode()):
        return error(401, "invalid_api_key")
    if request.headers.get("x-api-version", "").strip() != "1":
        return bad_request("invalid_api_version")
    retry_after = faults.over_quota()
    if retry_after is not None:
        return error(429, "quota_exceeded", {"Retry-After": str(retry_after)})
    retry_after = faults.rate_limited(arrived)
    if retry_after is not None:
        return error(429, "rate_limited", {"Retry-After": str(retry_after)})
    injected = faults.injected_error() if inject_errors else None
    if injected is not None:
        return error(*injected)
    return None


def register_routes(
    app: Starlette, path: str, handler: Handler, methods: Sequence[str] = ("GET", "POST", "DELETE")
) -> None:
    """Serve ``path`` with ``handler`` behind the sandbox's key check, limits, faults and latency.

    ``handler(request, state)`` only does the route's own work: it is called once the request
    passed the key, version, quota, rate-limit and injected-error checks, and its answer leaves
    after the configured latency (an accepted POST's answer may be lost, ``--drop-response-rate``).
    """
    state: SandboxState = app.state.sandbox

    async def guarded(request: Request) -> Response:
        is_post = request.method == "POST"
        if is_post:
            with state.stats._lock:
                state.stats.posts += 1
        denied = guard(state, request, inject_errors=True)
        if denied is not None:
            return denied
        response = await handler(request, state)
        if is_post and response.status_code < 300 and state.faults.drop_response():
            # Stored, but the answer comes too late for the client's timeout.
            with state.stats._lock:
                state.stats.dropped_responses += 1
            await state.answer_at(request)
            await state.faults.sleep(state.settings.drop_response_delay_s)
        return response

    async def endpoint(request: Request) -> Response:
        response = await guarded(request)
        await state.answer_at(request)
        return response

    app.router.routes.append(Route(path, endpoint, methods=list(methods)))


def register_entity(app: Starlette, entity: Entity) -> None:
    """Serve an entity at its path (POST, GET and DELETE) and create its table."""
    app.state.sandbox.store.table(entity.table)

    async def handler(request: Request, state: SandboxState) -> Response:
        return await handle(entity, request, state)

    register_routes(app, entity.path, handler)


async def _status(state: SandboxState, request: Request) -> Response:
    denied = guard(state, request, inject_errors=False)
    if denied is not None:
        return denied
    return JSONResponse(
        {
            "object": "status",
            "availableApiVersions": [
                {
                    "object": "api_version",
                    "payload": {"version": "1.0.0b", "status": "beta", "isDeprecated": False},
                }
            ],
            "latestStableMajorApiVersion": 1,
            "requestMajorApiVersion": 1,
            "clientId": CLIENT_ID,
            "projectId": PROJECT_ID,
            "roles": ["ROLE_API_USER"],
            "permissions": ["status", "depotIngest", "depotFetch", "depotDelete"],
            "serverTime": now_text(),
            "environment": "sandbox",
        }
    )


class CountingMiddleware:
    """Counts every request and the status code it was answered with."""

    def __init__(self, app: ASGIApp, stats: SandboxStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_post = scope.get("method") == "POST"
        with self.stats._lock:
            self.stats.requests += 1
            if is_post:
                now = time.monotonic()
                if self.stats.first_post_s is None:
                    self.stats.first_post_s = now
                self.stats.last_post_s = now

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.count_status(int(message["status"]))
                if is_post:
                    self.stats.last_post_done_s = time.monotonic()
            await send(message)

        await self.app(scope, receive, counting_send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error(exc.status_code, codes.get(exc.status_code, "error"), exc.headers)


def create_app(settings: SandboxSettings, entities: Sequence[Entity] = ENTITIES) -> Starlette:
    """A Starlette app implementing the Biteral API for ``entities``; its state is
    ``app.state.sandbox`` (a ``SandboxState``).

    With ``settings.db`` None the data lives in memory (``running_sandbox`` uses a temporary file).
    """
    state = SandboxState(settings)

    async def status(request: Request) -> Response:
        response = await _status(state, request)
        await state.answer_at(request)
        return response

    app = Starlette(
        routes=[Route("/status", status, methods=["GET"])],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = state
    for entity in entities:
        register_entity(app, entity)
    app.add_middleware(CountingMiddleware, stats=state.stats)
    return app


@dataclass(eq=False)
class RunningSandbox:
    """A sandbox serving in a background thread of this process."""

    url: str
    api_key: str = field(repr=False)
    db: Path
    settings: SandboxSettings
    stats: SandboxStats
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _state: SandboxState = field(repr=False)
    _tempdir: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        """The port the sandbox is bound to."""
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop serving, close the database and delete it if temporary; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._state.faults.closing.set()
        self._server.should_exit = True
        self._thread.join(_STOP_WAIT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(_STOP_WAIT_S)
        self._state.store.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)


@contextmanager
def running_sandbox(settings: SandboxSettings | None = None) -> Iterator[RunningSandbox]:
    """uvicorn.Server in a background thread; waits until it is accepting; always stops it."""
    sandbox = start_sandbox(settings)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound here so a busy port fails before any thread starts."""
    sock: socket.socket | None = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise UsageError(f"cannot start the sandbox on {host}:{port}: {exc.strerror or exc}") from exc


def start_sandbox(settings: SandboxSettings | None = None) -> RunningSandbox:
    """Start a sandbox in a background thread and return once it accepts connections."""
    settings = settings or SandboxSettings()
    tempdir: Path | None = None
    db = settings.db
    if db is None:
        tempdir = Path(tempfile.mkdtemp(prefix="biteral-sandbox-"))
        db = tempdir / "customers.sqlite"
    state: SandboxState | None = None
    try:
        sock = _bind(settings.host, settings.port)
        try:
            app = create_app(replace(settings, db=db))
        except BaseException:
            sock.close()
            raise
    except BaseException:
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        raise
    state = app.state.sandbox
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        # The sandbox's one event loop does every request's work; the benchmarks' upload figures
        # at concurrency 16 are bound by its CPU (issue 11): uvloop and httptools cut it.
        loop=_LOOP,
        http="httptools",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except SystemExit:
            # uvicorn exits on a startup failure; the waiting loop below reports it.
            pass
        finally:
            sock.close()

    thread = threading.Thread(target=run, name="biteral-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_WAIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(_STOP_WAIT_S)
        state.store.close()
        if tempdir is not None:
            shutil.rmtree(tempdir, ignore_errors=True)
        raise UsageError(f"cannot start the sandbox on {settings.host}:{settings.port}")
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    return RunningSandbox(
        url=f"http://{shown_host}:{port}",
        api_key=settings.api_key,
        db=db,
        settings=settings,
        stats=state.stats,
        _server=server,
        _thread=thread,
        _state=state,
        _tempdir=tempdir,
    )


def key_hint(api_key: str) -> str:
    """How to refer to the key without showing it: the public default is named, others are not."""
    if api_key == DEFAULT_API_KEY:
        return f"API key: {DEFAULT_API_KEY!r} (the default)"
    return f"API key: the one you configured ({len(api_key)} characters)"


def serve(settings: SandboxSettings, *, echo: Callable[[str], None] = print) -> None:
    """Blocking: serve until Ctrl-C, after printing one line with the URL and the key hint.

    The URL carries the actual port when ``settings.port`` is 0; the first request is answered as
    fast as the next ones (the place name indexes are built before the line is printed).
    """
    warm_up()
    with running_sandbox(settings) as sandbox:
        try:
            echo(f"Biteral sandbox listening on {sandbox.url} — {key_hint(settings.api_key)}; Ctrl-C to stop")
            # join() with a timeout keeps the main thread responsive to Ctrl-C.
            while sandbox._thread.is_alive():
                sandbox._thread.join(0.5)
        except KeyboardInterrupt:
            return
