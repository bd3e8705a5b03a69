"""The command line: ``options`` (the table every option is written in once), ``config`` (the
options file), ``commands`` (the Typer app derived from the table) and ``console`` (what it prints).

Every option can also come from an environment variable ``BITERAL_<OPTION>`` or a
``biteral-import.toml``; the command line wins, then the environment, then the file.
"""

from __future__ import annotations

from .commands import app

__all__ = ["app"]
