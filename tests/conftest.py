"""Shared fixtures: a local Biteral sandbox for the whole session and a factory for special ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from biteral_cli.sandbox import RunningSandbox, SandboxSettings, running_sandbox

#: A directory that tools/mutation.py sets so the location tables are built once for all its runs
#: instead of once per mutant; a normal run leaves it unset.
SHARED_CACHE = "BITERAL_IMPORT_TEST_CACHE"


@pytest.fixture(scope="session", autouse=True)
def private_cache(pytestconfig: pytest.Config) -> Iterator[Path]:
    """Point XDG_CACHE_HOME at the checkout's own .pytest_cache (restored afterwards), so no test
    reads or writes the user's cache. A fresh clone (CI) builds the location tables from cold; a
    developer's second run finds them warm, so `pytest -m "not slow"` stays quick. The tables carry
    their own version check, and tests/test_location_cache.py builds them from cold every run."""
    shared = os.environ.get(SHARED_CACHE)
    cache = Path(shared) if shared else pytestconfig.cache.mkdir("xdg-cache")
    cache.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        yield cache
    finally:
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


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


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file created without an explicit mode is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
