"""The HTTP client: one keep-alive connection pool to the API, its headers, and its errors wrapped.

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
        headers = {
            "X-API-Key": settings.api_key.reveal(),
            "X-API-Version": "1",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": settings.user_agent,
        }
        loopback = is_loopback(httpx.URL(settings.api_url).host)
        self._http = httpx.AsyncClient(
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

    async def __aenter__(self) -> ApiClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(kind, error, trace)

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
        try:
            return await self._http.request(method, path, content=body, extensions=extensions)
        except httpx.TimeoutException as exc:
            raise AnswerTimeoutError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(str(exc)) from exc
