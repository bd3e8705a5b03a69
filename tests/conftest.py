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
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point XDG_CACHE_HOME at a directory of this session's own (restored afterwards), so no test
    reads or writes the user's cache: the location tables are built from cold in every run, and the
    results cannot depend on what an older version left on this machine."""
    shared = os.environ.get(SHARED_CACHE)
    if shared:
        cache = Path(shared)
    else:
        base = tmp_path_factory.getbasetemp()
        # pytest-xdist workers share their parent's directory, so the tables are built once per run.
        cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "xdg-cache"
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
