"""Progress over records: a rich bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from .report import Tally

#: Seconds between two plain progress lines when not on a terminal (cron, CI logs).
LOG_EVERY_S = 5.0


class _Named(Protocol):
    name: str
    format: str


class Progress:
    """Shows how many records have been handled, and how; silent when disabled."""

    def __init__(self, console: Console, *, mode: str, total: int | None) -> None:
        self.console = console
        self.mode = mode
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.last_log = self.started
        self._bar: RichProgress | None = None
        if mode == "bar":
            # Fits 80 columns with seven-digit counts: no label, a short bar, short words.
            self._bar = RichProgress(
                BarColumn(bar_width=10),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}/s"),
                TimeRemainingColumn(compact=True),
                TextColumn(
                    "[green]ok {task.fields[accepted]}[/] [red]rej {task.fields[rejected]}[/]"
                    " [magenta]fail {task.fields[failed]}[/] [yellow]retry {task.fields[retries]}[/]"
                ),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task(
                "import", total=total, rate="-", accepted=0, rejected=0, failed=0, retries=0
            )
            self._bar.start()

    @classmethod
    def start(cls, console: Console, *, enabled: bool, total: int | None) -> Progress:
        """A bar when the console is an interactive terminal, log lines otherwise, nothing when disabled."""
        if not enabled:
            return cls(console, mode="off", total=total)
        return cls(console, mode="bar" if console.is_terminal else "log", total=total)

    @staticmethod
    def estimate_rows(sources: Sequence[_Named]) -> int | None:
        """Rows in the inputs, counted as line breaks (an estimate: quoted newlines count too)."""
        total = 0
        for source in sources:
            path = Path(source.name)
            if source.name == "-" or source.format not in ("csv", "tsv", "jsonl") or not path.is_file():
                return None
            opener = gzip.open if path.suffix == ".gz" else open
            lines = 0
            with opener(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    lines += block.count(b"\n")
            total += max(lines - (1 if source.format in ("csv", "tsv") else 0), 0)
        return total

    def update(self, tally: Tally, retries: int, *, sent: int = 0) -> None:
        """Record ``sent`` more finished records and refresh what the user sees."""
        if self.mode == "off":
            return
        self.done += sent
        totals = tally.totals
        now = time.monotonic()
        rate = self.done / max(now - self.started, 1e-9)
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=totals.accepted + totals.rejected + totals.failed + totals.skipped,
                rate=f"{rate:.0f}",
                accepted=totals.accepted,
                rejected=totals.rejected,
                failed=totals.failed,
                retries=retries,
            )
        elif now - self.last_log >= LOG_EVERY_S:
            self.last_log = now
            self.console.print(
                f"biteral-import: {totals.rows:,} rows read, {totals.accepted:,} accepted, "
                f"{totals.rejected:,} rejected, {totals.failed:,} failed, {totals.skipped:,} skipped, "
                f"{retries:,} retries, {rate:,.0f} rows/s",
                highlight=False,
                soft_wrap=True,
            )

    def finish(self) -> None:
        """Stop the bar (it stays on screen)."""
        if self._bar is not None:
            self._bar.stop()


class _IsoFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The record's time in ISO 8601 with milliseconds and the UTC offset."""
        return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def verbose_handler() -> logging.Handler:
    """A log handler for ``--verbose``: one unwrapped line per event on stderr, ISO 8601 timestamp first."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_IsoFormatter("%(asctime)s %(levelname)s %(message)s"))
    return handler
