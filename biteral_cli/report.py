"""Failure and warning reports, the run's tally of outcomes, and the summary (JSON, table, line).

Formula neutralisation: every cell of every CSV this module writes that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading apostrophe (OWASP "CSV injection" advice).
This includes harmless values such as ``-5`` or ``+34 600 000 000``: telling a harmless number
from a crafted ``-2+3+cmd|...`` is exactly where such filters fail, and a spreadsheet shows the
apostrophe-prefixed value as the original text. A cell that already starts with an apostrophe gets
one more, so the guard is an escape that can be undone exactly: ``unguard`` (applied by the reader
to every cell and header of a failure report fed back in) removes one leading apostrophe, giving
back ``-Madrid`` for ``'-Madrid`` and ``'quoted`` for ``''quoted``. JSONL reports are written as-is
(not a spreadsheet format).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from biteral_cli.errors import ReportError
from biteral_cli.records import REPORT_COLUMNS, SourceRow

Outcome = Literal["accepted", "rejected", "failed", "skipped"]
ReportFormat = Literal["csv", "jsonl"]

#: Columns the reports add after the input's own; an input column with one of these names (a
#: failure report fed back in) is dropped, so re-running on a report never duplicates them.

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What gets the guard: formula starts, and the guard character itself (so it can be undone).
_GUARDED_STARTS = (*_FORMULA_STARTS, "'")
#: Below this much free space a report path is refused up front: the run would die mid-way.
_MIN_FREE_BYTES = 1 << 20


def neutralize(value: str) -> str:
    """Return ``value`` with an apostrophe in front when a spreadsheet would run it as a formula
    or when it starts with an apostrophe already (so that ``unguard`` restores it exactly)."""
    if value and value.startswith(_GUARDED_STARTS):
        return "'" + value
    return value


def unguard(value: str) -> str:
    """Undo ``neutralize``: drop the one leading apostrophe a report put in front of a cell."""
    return value[1:] if value.startswith("'") else value


#: Report file extensions that mean JSON Lines; any other is CSV.
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def report_format(path: Path, explicit: ReportFormat | None) -> ReportFormat:
    """The format of a report: ``--failures-format`` when given, else the path's extension (.jsonl or CSV)."""
    if explicit is not None:
        return explicit
    return "jsonl" if path.suffix.lower() in _JSONL_SUFFIXES else "csv"


def retire_old_report(path: Path) -> Path | None:
    """Rename a report left by an earlier run at ``path`` to ``<path>.old``; return the new path, if any.

    A run writes its reports only when a row needs one, so a report left from yesterday would
    otherwise look like today's after a clean run.
    """
    if not path.is_file():
        return None
    old = path.with_name(path.name + ".old")
    try:
        os.replace(path, old)
    except OSError as exc:
        raise ReportError(f"cannot move the earlier report {path} out of the way: {exc.strerror or exc}") from exc
    return old


def display_source(name: str) -> str:
    """How an input is named in reports and summaries (standard input is ``<stdin>``)."""
    return "<stdin>" if name == "-" else name


def check_writable(path: Path, *, min_free_bytes: int = _MIN_FREE_BYTES) -> None:
    """Raise ReportError (one line) when ``path`` cannot be created or written; never modify it."""
    if path.is_dir():
        raise ReportError(f"cannot write {path}: it is a directory; give a file path")
    parent = path.parent
    if not parent.is_dir():
        raise ReportError(f"cannot write {path}: directory {parent} does not exist")
    try:
        if path.exists():
            # O_APPEND without writing leaves content and mtime alone but proves write access.
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            with tempfile.TemporaryFile(dir=parent):
                pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReportError(f"cannot write {path}: {reason}") from exc
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        return
    if free < min_free_bytes:
        raise ReportError(f"cannot write {path}: no space left on the device of {parent}")


#: What a redacted cell reads in a report (--redact-reports).
REDACTED = "[redacted]"


def create_private(path: Path) -> int:
    """Create (or replace) ``path`` for writing, readable by its owner only; return the fd.

    The mode is given to ``os.open`` so the file is never readable by others, not even for a
    moment; a regular file already there is removed first, because reopening it would keep its
    old, perhaps wider, permissions. Anything else (a device such as /dev/full, a FIFO) is opened
    as it is.
    """
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class RowReport:
    """Streams one row per call to a CSV or JSONL file, created lazily at the first row.

    Nothing is written (and an existing file is left alone) when no row is ever added. The CSV
    header is ``columns`` (minus REPORT_COLUMNS) followed by REPORT_COLUMNS; cells whose header is
    not among ``columns`` go into ``_extra`` as one compact JSON object. Non-string cells are
    written as compact JSON text. CSV is UTF-8 with a BOM so spreadsheets detect the encoding.
    """

    def __init__(
        self,
        path: Path,
        *,
        fmt: ReportFormat = "csv",
        columns: Sequence[str] = (),
        redact: Callable[[str], bool] | None = None,
    ) -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"unknown report format {fmt!r}")
        self.path = path
        self.fmt: ReportFormat = fmt
        seen: dict[str, None] = {}
        for name in columns:
            if name not in REPORT_COLUMNS:
                seen.setdefault(name, None)
        self.columns: tuple[str, ...] = tuple(seen)
        self._known = frozenset(self.columns)
        # --redact-reports: cells of the columns (and _extra keys) this says yes to are masked.
        self._redact = redact
        self._masked = tuple(redact is not None and redact(name) for name in self.columns)
        self.rows_written = 0
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._closed = False

    def _open(self) -> IO[str]:
        try:
            fd = create_private(self.path)
            if self.fmt == "csv":
                file = open(fd, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
                self._writer = csv.writer(file)
                self._writer.writerow([neutralize(c) for c in (*self.columns, *REPORT_COLUMNS)])
            else:
                file = open(fd, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ReportError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._file = file
        return file

    def add(self, row: SourceRow, *, stage: str, field: str, error: str) -> None:
        """Append one report row: the row's cells as read plus where and why it went wrong."""
        if self._closed:
            raise ValueError(f"report {self.path} is closed")
        file = self._file if self._file is not None else self._open()
        try:
            if self.fmt == "csv":
                self._write_csv(row, stage, field, error)
            else:
                self._write_jsonl(file, row, stage, field, error)
        except OSError as exc:
            raise ReportError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.rows_written += 1

    def _write_csv(self, row: SourceRow, stage: str, field: str, error: str) -> None:
        cells = row.cells
        out: list[str] = []
        for name, masked in zip(self.columns, self._masked, strict=True):
            value = cells.get(name, "")
            if masked and value not in ("", None):
                value = REDACTED
            out.append(neutralize(value if isinstance(value, str) else _json_text(value)))
        extra = self._masked_cells({k: v for k, v in cells.items() if k not in self._known and k not in REPORT_COLUMNS})
        out.extend(
            (
                neutralize(display_source(row.source)),
                str(row.row),
                neutralize(stage),
                neutralize(field),
                neutralize(error),
                _json_text(extra) if extra else "",
            )
        )
        self._writer.writerow(out)

    def _masked_cells(self, cells: dict[str, Any]) -> dict[str, Any]:
        """``cells`` with the values of redacted keys replaced by REDACTED (empty ones kept)."""
        redact = self._redact
        if redact is None:
            return cells
        return {k: REDACTED if v not in ("", None) and redact(k) else v for k, v in cells.items()}

    def _write_jsonl(self, file: IO[str], row: SourceRow, stage: str, field: str, error: str) -> None:
        obj = self._masked_cells({k: v for k, v in row.cells.items() if k not in REPORT_COLUMNS})
        obj.update(_source=display_source(row.source), _row=row.row, _stage=stage, _field=field, _error=error)
        file.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        """Flush and close the file if one was created; safe to call twice."""
        self._closed = True
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                raise ReportError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def __enter__(self) -> RowReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RowOrdered(RowReport):
    """Holds the rows added to a report while a chunk is processed, and writes them sorted by row
    number (stable) on ``flush``: a chunk's rows may be looked at out of order, its report may not."""

    def __init__(self, report: RowReport) -> None:
        self._report = report
        self._held: list[tuple[int, int, SourceRow, str, str, str]] = []

    def add(self, row: SourceRow, *, stage: str, field: str, error: str) -> None:
        """Hold one report row until ``flush``."""
        self._held.append((row.row, len(self._held), row, stage, field, error))

    def flush(self) -> None:
        """Write the rows held, in row order (rows of one row number in the order they came)."""
        held, self._held = self._held, []
        for _, _, row, stage, column, error in sorted(held, key=lambda entry: entry[:2]):
            self._report.add(row, stage=stage, field=column, error=error)


@dataclass(slots=True)
class FileCounts:
    """Outcome counts of one input file (or of all of them)."""

    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    warnings: int = 0


class Tally:
    """Counts outcomes per input file and error reasons; the single source of the summary's figures.

    Every ``add`` counts one row and its outcome, so accepted + rejected + failed + skipped equals
    rows by construction. ``reason`` must be generic (``"country: unknown country"``, not the
    value that was wrong) so that equal problems aggregate into one line of the summary.
    """

    def __init__(self) -> None:
        self.files: dict[str, FileCounts] = {}
        self.errors: Counter[str] = Counter()
        self.warning_reasons: Counter[str] = Counter()

    def register(self, source: str) -> FileCounts:
        """Make ``source`` appear in the summary (in registration order) even if it has no rows."""
        counts = self.files.get(source)
        if counts is None:
            counts = self.files[source] = FileCounts()
        return counts

    def add(self, source: str, outcome: Outcome, reason: str | None = None, n: int = 1) -> None:
        """Count ``n`` rows of ``source`` with one outcome; ``reason`` counts for rejected/failed."""
        counts = self.files.get(source) or self.register(source)
        if outcome == "accepted":
            counts.accepted += n
        elif outcome == "rejected":
            counts.rejected += n
        elif outcome == "failed":
            counts.failed += n
        elif outcome == "skipped":
            counts.skipped += n
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
        counts.rows += n
        if reason is not None and (outcome == "rejected" or outcome == "failed"):
            self.errors[reason] += n

    def warn(self, source: str, reason: str, n: int = 1) -> None:
        """Count ``n`` warnings (normalizations that did not reject a row) of ``source``."""
        counts = self.files.get(source) or self.register(source)
        counts.warnings += n
        self.warning_reasons[reason] += n

    @property
    def totals(self) -> FileCounts:
        """The sum over all files."""
        total = FileCounts()
        for c in self.files.values():
            total.rows += c.rows
            total.accepted += c.accepted
            total.rejected += c.rejected
            total.failed += c.failed
            total.skipped += c.skipped
            total.warnings += c.warnings
        return total


_COUNT_KEYS = ("rows", "accepted", "rejected", "failed", "skipped", "warnings")


@dataclass(kw_only=True)
class Summary:
    """The figures of one run, as shown at the end and written by ``--summary-json``."""

    rows: int
    accepted: int
    rejected: int
    failed: int
    skipped: int
    warnings: int
    batches: int
    retries: int
    duration_s: float
    aborted: str | None
    """Why the run stopped early (one line), or None when it went to the end."""
    exit_code: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per input: its counts, plus how it was read (format, encoding, delimiter, sheet, notes)."""
    errors: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    failures_path: str | None = None
    warnings_path: str | None = None
    warning_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    """The one-line error that ended the run (exit 2, 3, 130, 143), or None."""
    resumed: int = 0
    """Rows confirmed by an earlier run (``--resume``): counted as accepted, not processed again."""
    old_reports: dict[str, str] = field(default_factory=dict)
    """Reports of an earlier run moved out of the way: path -> where it went."""
    settled_rate: float | None = None
    """Requests per second the run learned from the API's 429s; None when none came."""

    @classmethod
    def from_tally(
        cls,
        tally: Tally,
        *,
        batches: int,
        retries: int,
        duration_s: float,
        aborted: str | None,
        exit_code: int,
        dry_run: bool = False,
        failures_path: str | None = None,
        warnings_path: str | None = None,
        error: str | None = None,
        resumed: int = 0,
        file_info: dict[str, dict[str, Any]] | None = None,
        old_reports: dict[str, str] | None = None,
        settled_rate: float | None = None,
    ) -> Summary:
        """Build the summary from the tally's counts plus the run's own figures."""
        totals = tally.totals
        info = file_info or {}
        files = {display_source(name): {**asdict(c), **info.get(name, {})} for name, c in tally.files.items()}
        return cls(
            rows=totals.rows,
            accepted=totals.accepted,
            rejected=totals.rejected,
            failed=totals.failed,
            skipped=totals.skipped,
            warnings=totals.warnings,
            batches=batches,
            retries=retries,
            duration_s=duration_s,
            aborted=aborted,
            exit_code=exit_code,
            files=files,
            errors=dict(tally.errors),
            dry_run=dry_run,
            failures_path=failures_path,
            warnings_path=warnings_path,
            warning_reasons=dict(tally.warning_reasons),
            error=error,
            resumed=resumed,
            old_reports=old_reports or {},
            settled_rate=settled_rate,
        )

    @classmethod
    def for_error(cls, message: str, exit_code: int) -> Summary:
        """The summary of a run that ended before any row was counted (bad options or input, key refused)."""
        return cls.from_tally(
            Tally(), batches=0, retries=0, duration_s=0.0, aborted=message, exit_code=exit_code, error=message
        )

    @property
    def records_per_second(self) -> float:
        """Rows this run processed per second (rows an earlier run confirmed do not count; 0.0 at zero duration)."""
        processed = self.rows - self.resumed
        return round(processed / self.duration_s, 1) if self.duration_s > 0 else 0.0

    def sorted_errors(self) -> list[tuple[str, int]]:
        """Error reasons, most frequent first (ties by reason, for a stable order)."""
        return _ranked(self.errors)

    def sorted_warnings(self) -> list[tuple[str, int]]:
        """Warning reasons, most frequent first (ties by reason, for a stable order)."""
        return _ranked(self.warning_reasons)

    def to_json(self) -> dict[str, Any]:
        """The summary under its stable keys, ready for ``json.dump``."""
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "batches": self.batches,
            "retries": self.retries,
            "settled_rate": self.settled_rate,
            "duration_s": round(self.duration_s, 3),
            "records_per_second": self.records_per_second,
            "aborted": self.aborted,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "failures_path": self.failures_path,
            "warnings_path": self.warnings_path,
            "files": {name: dict(c) for name, c in self.files.items()},
            "errors": dict(self.sorted_errors()),
            "warning_reasons": dict(self.sorted_warnings()),
            "error": self.error,
            "resumed": self.resumed,
            "old_reports": dict(self.old_reports),
        }

    def check(self) -> None:
        """Raise RuntimeError when the counts do not add up (which would be a bug, not bad data)."""
        outcomes = self.accepted + self.rejected + self.failed + self.skipped
        if outcomes != self.rows:
            raise RuntimeError(
                f"summary does not add up: {self.accepted} accepted + {self.rejected} rejected + "
                f"{self.failed} failed + {self.skipped} skipped != {self.rows} rows"
            )
        if self.files:
            for key in _COUNT_KEYS:
                total = sum(c.get(key, 0) for c in self.files.values())
                if total != getattr(self, key):
                    raise RuntimeError(
                        f"summary does not add up: files' {key} sum to {total}, not {getattr(self, key)}"
                    )


def write_summary_json(summary: Summary, path: Path) -> None:
    """Write the summary's JSON to ``path`` atomically (a reader never sees half a file)."""
    text = json.dumps(summary.to_json(), ensure_ascii=False, indent=2) + "\n"
    parent = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _ranked(reasons: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))


def _n(value: int) -> str:
    return f"{value:,}"


def _reasons_table(title: str, ranked: list[tuple[str, int]], top: int, footer: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("reason")
    table.add_column("rows", justify="right")
    for reason, count in ranked[:top]:
        table.add_row(Text(reason), _n(count))
    rest = ranked[top:]
    if rest:
        table.add_row(Text(f"… {len(rest)} more reason(s)", style="dim"), _n(sum(count for _, count in rest)))
    if footer:
        table.add_row(Text(footer, style="dim"), "")
    return table


def summary_table(summary: Summary, *, top_errors: int = 5) -> Group:
    """A rich renderable: the run's figures, one row per file when there are several, top errors."""
    title = "biteral-import summary" + (" (dry run)" if summary.dry_run else "")
    figures = Table(title=title, show_header=False, title_justify="left")
    figures.add_column("figure", style="bold")
    figures.add_column("value", justify="right")
    accepted_label = "valid (dry run, not sent)" if summary.dry_run else "accepted"
    for label, value in (
        ("rows read", summary.rows),
        (accepted_label, summary.accepted),
        ("rejected", summary.rejected),
        ("failed", summary.failed),
        ("skipped", summary.skipped),
        ("warnings", summary.warnings),
        ("batches", summary.batches),
        ("retries", summary.retries),
    ):
        figures.add_row(label, _n(value))
    if summary.settled_rate is not None:
        figures.add_row("settled rate", f"{summary.settled_rate:,.2f} requests/s (learned from 429s)")
    figures.add_row("duration", f"{summary.duration_s:,.1f} s")
    figures.add_row("records per second", f"{summary.records_per_second:,.1f}")
    figures.add_row("exit code", str(summary.exit_code))
    if summary.aborted:
        figures.add_row(Text("aborted", style="bold red"), Text(summary.aborted, style="red"))
    if summary.failures_path:
        figures.add_row("failure report", Text(summary.failures_path))
    if summary.warnings_path:
        figures.add_row("warning report", Text(summary.warnings_path))
    parts: list[Table] = [figures]

    if len(summary.files) > 1:
        per_file = Table(title="per file", title_justify="left")
        per_file.add_column("file")
        for key in _COUNT_KEYS:
            per_file.add_column(key, justify="right")
        for name, counts in summary.files.items():
            per_file.add_row(Text(name), *(_n(counts.get(key, 0)) for key in _COUNT_KEYS))
        parts.append(per_file)

    if summary.old_reports:
        for path, old in summary.old_reports.items():
            figures.add_row("earlier report", Text(f"{path} moved to {old}"))
    ranked = summary.sorted_errors()
    if ranked and top_errors > 0:
        where = f"every row: {summary.failures_path}" if summary.failures_path else None
        parts.append(_reasons_table("top error reasons", ranked, top_errors, where))
    warned = summary.sorted_warnings()
    if warned and top_errors > 0:
        where = (
            f"every row: {summary.warnings_path}"
            if summary.warnings_path
            else "every row: run again with --warnings PATH"
        )
        parts.append(_reasons_table("top warning reasons", warned, top_errors, where))
    return Group(*parts)


def summary_line(summary: Summary) -> str:
    """One line for ``--quiet``: rows and outcomes, the exit code, and why it aborted if it did."""
    line = (
        f"biteral-import: {summary.rows} rows: {summary.accepted} accepted, "
        f"{summary.rejected} rejected, {summary.failed} failed, {summary.skipped} skipped"
    )
    tail = f"exit {summary.exit_code}"
    if summary.dry_run:
        tail = "dry run, " + tail
    if summary.aborted:
        tail += f", aborted: {summary.aborted}"
    return f"{line} ({tail})"
