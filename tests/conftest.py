"""Shared fixtures: a local Biteral sandbox for the whole session and a factory for special ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from biteral_cli.sandbox import RunningSandbox, SandboxSettings, running_sandbox


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    """A sandbox with default settings and a throwaway database, shared by the whole suite."""
    with running_sandbox(SandboxSettings()) as running:
        yield running


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Call with SandboxSettings keyword arguments to start a sandbox; all stop at teardown."""
    with ExitStack() as stack:

        def start(**settings: Any) -> RunningSandbox:
            return stack.enter_context(running_sandbox(SandboxSettings(**settings)))

        yield start


@pytest.fixture
def api_headers(sandbox: RunningSandbox) -> dict[str, str]:
    """The headers the shared sandbox accepts."""
    return {
        "X-API-Key": sandbox.api_key,
        "X-API-Version": "1",
        "Accept": "application/json",
    }
