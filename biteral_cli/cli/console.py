"""Everything the command line itself prints: one-line errors, the summary JSON of a refused run,
the --check answer; and whether a person is at the keyboard."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from ..errors import BiteralImportError

if TYPE_CHECKING:
    from ..settings import ImportSettings

PROG = "biteral-import"


def fail(exc: BiteralImportError) -> typer.Exit:
    """Print ``exc`` as one red line on stderr; the Exit to raise carries its exit code."""
    Console(stderr=True).print(f"{PROG}: {exc}", style="red", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def error_summary(exc: BiteralImportError, path: Path | None, json_out: bool) -> None:
    """Write the summary JSON of a run that ended before counting rows, so a script always has one."""
    from ..report import Summary, write_summary_json

    summary = Summary.for_error(str(exc), exc.exit_code)
    if json_out:
        Console().print_json(json.dumps(summary.to_json()))
    if path is not None:
        with contextlib.suppress(BiteralImportError):  # an unwritable path is the error being shown
            write_summary_json(summary, path)


def stdin_is_terminal() -> bool:
    """Whether a person may be at the keyboard (the code may fall back to the email only then)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def show_check(settings: ImportSettings) -> None:
    """Call GET /status (--check) and print what the API said about the key."""
    from ..importer import check_api

    endpoint, status = check_api(settings)
    permissions = ", ".join(status.get("permissions", [])) or "none listed"
    Console().print(
        f"OK: {endpoint.url} accepted the key {endpoint.key.masked()} "
        f"(environment {status.get('environment', '?')}; permissions: {permissions})",
        highlight=False,
    )


def setup_logging(verbose: bool) -> None:
    """With --verbose, log the tool's own DEBUG lines (requests, retries) to stderr; never headers."""
    import logging

    from ..progress import verbose_handler

    logger = logging.getLogger("biteral_cli")
    for handler in [h for h in logger.handlers if getattr(h, "_biteral_verbose", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.NOTSET)
    if verbose:
        handler = verbose_handler()
        handler._biteral_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
