"""What the routes of one sandbox share: its settings, store, counters and faults."""

from __future__ import annotations

import time

from starlette.requests import Request

from .faults import Faults
from .settings import SandboxSettings, SandboxStats
from .store import Store

PROJECT_ID = "prj_sandbox"
CLIENT_ID = "cli_sandbox"


class SandboxState:
    """Per-app state, reachable from a route as ``request.app.state.sandbox``."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.store = Store(settings.db)
        self.stats = SandboxStats()
        self.faults = Faults(settings)

    async def answer_at(self, request: Request) -> None:
        """Wait until this request's simulated latency, counted from its arrival, has passed."""
        respond_at = getattr(request.state, "respond_at", None)
        if respond_at is not None:
            await self.faults.sleep(respond_at - time.monotonic())
