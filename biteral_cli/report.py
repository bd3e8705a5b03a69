"""Failure and warning reports, the run's tally of outcomes, and the summary (JSON, table, line).

Formula neutralisation: every cell of every CSV this module writes that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading apostrophe (OWASP "CSV injection" advice).
This includes harmless values such as ``-5`` or ``+34 600 000 000``: telling a harmless number
from a crafted ``-2+3+cmd|...`` is exactly where such filters fail, and a spreadsheet shows the
apostrophe-prefixed value as the original text. JSONL reports are written as-is (not a spreadsheet
format).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
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
#: Below this much free space a report path is refused up front: the run would die mid-way.
_MIN_FREE_BYTES = 1 << 20


def neutralize(value: str) -> str:
    """Return ``value`` with an apostrophe in front when a spreadsheet would run it as a formula."""
    if value and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


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
        self, path: Path, *, fmt: ReportFormat = "csv", columns: Sequence[str] = ()
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
        self.rows_written = 0
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._closed = False

    def _open(self) -> IO[str]:
        try:
            if self.fmt == "csv":
                file = open(self.path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
                self._writer = csv.writer(file)
                self._writer.writerow([neutralize(c) for c in (*self.columns, *REPORT_COLUMNS)])
            else:
                file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
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
        for name in self.columns:
            value = cells.get(name, "")
            out.append(neutralize(value if isinstance(value, str) else _json_text(value)))
        extra = {k: v for k, v in cells.items() if k not in self._known and k not in REPORT_COLUMNS}
        out.extend(
            (
                neutralize(row.source),
                str(row.row),
                neutralize(stage),
                neutralize(field),
                neutralize(error),
                _json_text(extra) if extra else "",
            )
        )
        self._writer.writerow(out)

    @staticmethod
    def _write_jsonl(file: IO[str], row: SourceRow, stage: str, field: str, error: str) -> None:
        obj = {k: v for k, v in row.cells.items() if k not in REPORT_COLUMNS}
        obj.update(_source=row.source, _row=row.row, _stage=stage, _field=field, _error=error)
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

    def add(self, source: str, outcome: Outcome, reason: str | None = None) -> None:
        """Count one row of ``source`` with its outcome; ``reason`` counts for rejected/failed."""
        counts = self.files.get(source) or self.register(source)
        if outcome == "accepted":
            counts.accepted += 1
        elif outcome == "rejected":
            counts.rejected += 1
        elif outcome == "failed":
            counts.failed += 1
        elif outcome == "skipped":
            counts.skipped += 1
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
        counts.rows += 1
        if reason is not None and (outcome == "rejected" or outcome == "failed"):
            self.errors[reason] += 1

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
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    failures_path: str | None = None
    warnings_path: str | None = None
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
        settled_rate: float | None = None,
    ) -> Summary:
        """Build the summary from the tally's counts plus the run's own figures."""
        totals = tally.totals
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
            files={name: asdict(c) for name, c in tally.files.items()},
            errors=dict(tally.errors),
            dry_run=dry_run,
            failures_path=failures_path,
            warnings_path=warnings_path,
            settled_rate=settled_rate,
        )

    @property
    def records_per_second(self) -> float:
        """Rows handled per second of the run (0.0 when the duration is zero)."""
        return round(self.rows / self.duration_s, 1) if self.duration_s > 0 else 0.0

    def sorted_errors(self) -> list[tuple[str, int]]:
        """Error reasons, most frequent first (ties by reason, for a stable order)."""
        return sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))

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
                        f"summary does not add up: files' {key} sum to {total}, "
                        f"not {getattr(self, key)}"
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


def _n(value: int) -> str:
    return f"{value:,}"


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

    ranked = summary.sorted_errors()
    if ranked and top_errors > 0:
        errors = Table(title="top error reasons", title_justify="left")
        errors.add_column("reason")
        errors.add_column("rows", justify="right")
        for reason, count in ranked[:top_errors]:
            errors.add_row(Text(reason), _n(count))
        rest = ranked[top_errors:]
        if rest:
            errors.add_row(
                Text(f"… {len(rest)} more reason(s)", style="dim"),
                _n(sum(count for _, count in rest)),
            )
        parts.append(errors)
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
