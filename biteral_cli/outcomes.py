"""The outcome of every row, in one place: counts (``Tally``), the failure and warning reports,
the resume checkpoint, the sync state, ``--max-errors`` and the run's stop reason.

``Outcomes`` is the uploader's listener (``on_accepted``, ``on_rejected``, ``on_failed``...) and what
the pipeline reports rejected and failed rows to; it prints nothing (the console layer does).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console

from .checkpoint import Checkpoint
from .chunk import Chunk
from .errors import BiteralImportError, TooManyErrorsError
from .progress import Progress
from .records import SourceRow
from .report import RowReport, Tally
from .settings import ImportSettings
from .state import SyncState
from .upload import FieldError, Item

log = logging.getLogger("biteral_cli.import")
#: Rows read before a --max-errors percentage is checked (MaxErrors.exceeded waits for them).
BUDGET_ROWS = 100


@dataclass(slots=True)
class Ref:
    """What the importer keeps with an item in flight: where it came from and its fingerprint.

    An item made from several rows (a product, ``--entity products``) keeps the others in
    ``extra``: every outcome is counted on each of its rows, so the counts still add up to the
    rows read, the failure report holds every row and ``--resume`` skips it only when all its
    rows were confirmed."""

    chunk: Chunk
    index: int
    fingerprint: str
    extra: tuple[SourceRow, ...] = ()

    @classmethod
    def of_rows(cls, rows: Sequence[SourceRow], headers: list[str], fingerprint: str) -> Ref:
        """A Ref to an item made from ``rows`` already read (the first is the one it is named by)."""
        first = Chunk(rows[0].source, headers, tabular=False)
        first.add(rows[0])
        return cls(first, 0, fingerprint, tuple(rows[1:]))

    @property
    def size(self) -> int:
        """How many input rows the item was made from."""
        return 1 + len(self.extra)

    @property
    def rows(self) -> tuple[SourceRow, ...]:
        """Every input row the item was made from, as read."""
        return (self.row, *self.extra)

    @property
    def source(self) -> str:
        """The input's name."""
        return self.chunk.source

    @property
    def number(self) -> int:
        """The row number as the file shows it."""
        return self.chunk.rows[self.index]

    @property
    def row(self) -> SourceRow:
        """The row as read, for the reports."""
        return self.chunk.row(self.index)


@functools.lru_cache(maxsize=4096)
def reason_key(field: str, message: str) -> str:
    """A reason that aggregates across rows: quoted values are blanked out."""
    generic = re.sub(r"'[^']*'", "'…'", message)
    generic = re.sub(r'"[^"]*"', '"…"', generic)
    return f"{field}: {generic}" if field and not generic.startswith(field) else generic


class Outcomes:
    """Counts, reports, checkpoint, sync state and the stop of one run; the uploader's listener."""

    def __init__(self, settings: ImportSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.tally = Tally()
        self.failures: RowReport | None = None
        self.warnings: RowReport | None = None
        self.checkpoint: Checkpoint | None = None
        self.state: SyncState | None = None
        self.progress: Progress | None = None
        self.stop = asyncio.Event()
        self.stop_reason: str | None = None
        self.exit_override: int | None = None
        self.error: BiteralImportError | None = None
        self.retries = 0
        self.batches_sent = 0
        self.settled_rate: float | None = None
        self.shown_codes: list[str] = []
        self.processed = 0
        """Rows taken from the inputs so far (what a --max-errors share is of)."""
        self.bad = 0
        self.resumed = 0

    def _count_bad(self) -> None:
        self.bad += 1
        self._check_budget()

    def _check_budget(self) -> None:
        limit = self.settings.max_errors
        if limit is not None and not self.stop.is_set() and limit.exceeded(self.bad, self.processed):
            self.halt(
                f"more than {limit} rows failed (--max-errors); the rest was not sent",
                TooManyErrorsError(f"stopped: more than {limit} rows were rejected or failed"),
            )

    def reject(self, row: SourceRow, stage: str, field: str, message: str, *, reason: str | None = None) -> None:
        """Count a row as rejected (under ``reason``, or its message made generic) and report it."""
        self.tally.add(row.source, "rejected", reason or reason_key(field, message))
        assert self.failures is not None
        self.failures.add(row, stage=stage, field=field, error=message)
        self._count_bad()

    def fail(self, row: SourceRow, reason: str) -> None:
        """Count a row as failed (not stored, not the row's fault) and report it for a re-run."""
        self.tally.add(row.source, "failed", reason)
        assert self.failures is not None
        self.failures.add(row, stage="api", field="", error=reason)
        if not reason.startswith("not sent"):  # rows an abort left unsent are not errors of their own
            self._count_bad()

    def halt(self, reason: str, error: BiteralImportError | None = None, exit_code: int | None = None) -> None:
        """Stop taking new rows; in-flight requests finish; the first reason given wins."""
        if self.stop.is_set():
            return
        self.stop_reason = reason
        self.error = error
        self.exit_override = exit_code
        self.stop.set()

    # -- the uploader's listener ----------------------------------------------------------------
    def on_accepted(self, items: Sequence[Item]) -> None:
        confirmed: list[tuple[str, int]] = []
        fingerprints: list[tuple[str, str]] = []
        rows = 0
        for item in items:
            ref: Ref = item.ref
            self.tally.add(ref.source, "accepted", n=ref.size)
            rows += ref.size
            if ref.source != "-":  # standard input cannot be resumed: the checkpoint has no entry
                confirmed.append((ref.source, ref.number))
                confirmed.extend((row.source, row.row) for row in ref.extra)
            fingerprints.append((item.code, ref.fingerprint))
            if len(self.shown_codes) < self.settings.show_stored:
                self.shown_codes.append(item.code)
        if self.checkpoint is not None:
            # Rows read from standard input are not recorded: without a content hash, no later
            # --resume could prove it is reading the same rows again.
            self.checkpoint.confirm([c for c in confirmed if self.checkpoint.tracks(c[0])])
        if self.state is not None:
            self.state.record(fingerprints)
        self._advance(rows)

    def on_rejected(self, item: Item, errors: Sequence[FieldError]) -> None:
        ref: Ref = item.ref
        for row in ref.rows:
            if not errors:
                self.reject(row, "api", "", "rejected by the API (400) without a reason")
            else:
                message = "; ".join(f"{e.field}: {e.description or e.code}" for e in errors)
                field = ",".join(dict.fromkeys(e.field for e in errors))
                self.reject(row, "api", field, message, reason=f"{errors[0].field}: {errors[0].code}")
        self._advance(ref.size)

    def on_failed(self, items: Sequence[Item], reason: str) -> None:
        if reason.endswith(": interrupted") and self.stop_reason:
            # The uploader only knows it was stopped; we know why.
            reason = reason.removesuffix("interrupted") + self.stop_reason
        rows = [row for item in items for row in item.ref.rows]
        for row in rows:
            self.fail(row, reason)
        self._advance(len(rows))

    def on_retry(self, reason: str, delay_s: float) -> None:
        self.retries += 1
        log.debug("retry in %.2fs: %s", delay_s, reason)
        if self.progress is not None:
            self.progress.update(self.tally, self.retries)

    def on_request(self, status: int | None, elapsed_s: float) -> None:
        pass

    def count_processed(self, n: int = 1) -> None:
        """Count ``n`` more rows taken from the inputs; a --max-errors percentage is first checked
        at the 100th (see ``MaxErrors``), so call this with rows up to and including it."""
        before = self.processed
        self.processed += n
        if self.bad and before < BUDGET_ROWS <= self.processed:
            self._check_budget()

    def _advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.tally, self.retries, sent=n)
