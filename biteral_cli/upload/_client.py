"""The HTTP client: keep-alive connections to the API, its headers, and its errors wrapped.

Each request in flight has a connection of its own: an httpx client holding one connection,
taken from the idle ones (made when none is idle, at most as many as requests ever ran at
once). One pool of ``concurrency`` connections costs more CPU per request, since httpcore looks
at every connection of its pool twice per request (is it closed, expired, idle?): at concurrency
16 that was about a fifth of the client's work per request (issue 11's upload figures).

The key travels only in the ``X-API-Key`` header to the configured origin: redirects are never
followed, proxies from the environment are ignored for a local API, and nothing here logs a header.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from ._config import UploadSettings, is_loopback
from ._exceptions import AnswerTimeoutError, ConnectionFailedError


class ApiClient:
    """Requests to the API of ``settings``; every httpx error becomes a NoAnswerError subclass."""

    def __init__(self, settings: UploadSettings) -> None:
        self._headers = {
            "X-API-Key": settings.api_key.reveal(),
            "X-API-Version": "1",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": settings.user_agent,
        }
        self._settings = settings
        self._loopback = is_loopback(httpx.URL(settings.api_url).host)
        # One TLS context for every connection (each would load the CA bundle again).
        self._ssl = httpx.create_ssl_context(trust_env=not self._loopback)
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def _client(self) -> httpx.AsyncClient:
        """An idle client (one keep-alive connection), or a new one when none is idle."""
        if self._idle:
            return self._idle.pop()
        settings = self._settings
        client = httpx.AsyncClient(
            base_url=settings.api_url,
            headers=self._headers,
            timeout=httpx.Timeout(settings.timeout_s),
            follow_redirects=False,
            verify=self._ssl,
            # Proxy variables make no sense for a local sandbox and would route its key elsewhere.
            trust_env=not self._loopback,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._all.append(client)
        return client

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        clients, self._all, self._idle = self._all, [], []
        for client in clients:
            await client.aclose()

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, on_written: Callable[[], None] | None = None
    ) -> httpx.Response:
        """One request with ``body`` (JSON already encoded); AnswerTimeoutError or ConnectionFailedError
        when no answer comes. ``on_written`` is called once the request is on the wire (not at all
        when the transport does not say, as a mock's does not)."""
        extensions: dict[str, Any] = {}
        if on_written is not None:

            async def trace(event: str, info: dict[str, Any]) -> None:
                # httpcore's trace events: http11.send_request_body.complete (or http2.).
                if event.endswith("send_request_body.complete"):
                    on_written()

            extensions["trace"] = trace
        client = self._client()
        try:
            return await self._http_request(client, method, path, body, extensions)
        finally:
            if not client.is_closed:
                self._idle.append(client)

    @staticmethod
    async def _http_request(
        client: httpx.AsyncClient, method: str, path: str, body: bytes | None, extensions: dict[str, Any]
    ) -> httpx.Response:
        try:
            return await client.request(method, path, content=body, extensions=extensions)
        except httpx.TimeoutException as exc:
            raise AnswerTimeoutError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(str(exc)) from exc
