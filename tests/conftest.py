"""Shared fixtures: a local Biteral sandbox for the whole session and a factory for special ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
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


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory with no BITERAL_ variables from the caller's shell (CLI tests)."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BITERAL_")]:
        monkeypatch.delenv(name)
    return tmp_path
