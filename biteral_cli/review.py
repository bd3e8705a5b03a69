"""The locations review: each distinct country, state and city value, what it became, and in how
many rows, worst first, so a user checks a few hundred places instead of a million rows."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from biteral_cli.records import Issue

__all__ = ["LocationReview", "ReviewRow"]

_FIELDS = ("country", "state", "city")
#: CSV columns of --locations-report.
COLUMNS = ("field", "written", "where", "sent", "problem", "rows")
_NOTE_PREFIX = "state filled in as"


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One distinct value of one location field, in one context (the country, and state for cities)."""

    field: str
    written: str
    where: str
    """The context it was resolved in: "ES" for a state, "ES ES-B" for a city; "" for a country."""
    sent: str
    """What the payload carries ("" when the value is not sent)."""
    problem: str
    """The warning or error about it, or the note that a state was filled in; "" when fine."""
    rows: int

    @property
    def severity(self) -> int:
        """0 for a problem, 1 for a note (a state filled in), 2 for a value that is fine."""
        if not self.problem:
            return 2
        return 1 if self.problem.startswith(_NOTE_PREFIX) else 0


class LocationReview:
    """Counts the rows of each distinct location value and remembers what became of it."""

    def __init__(self) -> None:
        # (country, state, city) as written -> [rows, per-field (field, written, where, sent, problem)]:
        # what a row's places become depends on these three cells only, so a row costs one look-up.
        self._triples: dict[Any, list[Any]] = {}

    def record(
        self, fields: dict[str, Any], payload: dict[str, Any], errors: Iterable[Issue], warnings: Iterable[Issue]
    ) -> None:
        """Count one row: its raw location ``fields``, the ``payload`` built and the row's issues."""
        key: Any = (fields.get("country"), fields.get("state"), fields.get("city"))
        try:
            entry = self._triples.get(key)
        except TypeError:  # a JSON object or list in a cell
            key = repr(key)
            entry = self._triples.get(key)
        if entry is not None:
            entry[0] += 1
            return
        problems: dict[str, str] = {}
        for issue in (*errors, *warnings):
            problems.setdefault(issue.field, issue.message)
        self._triples[key] = [1, self._describe(fields, payload, problems)]

    def record_clean(self, rows: Iterable[tuple[Any, dict[str, Any], dict[str, Any]]]) -> None:
        """Count rows without any problem, in order: (the key ``record`` would use, fields, payload) each."""
        triples = self._triples
        for key, fields, payload in rows:
            entry = triples.get(key)
            if entry is None:
                triples[key] = [1, self._describe(fields, payload, {})]
            else:
                entry[0] += 1

    def record_counted(
        self, entries: Iterable[tuple[tuple[Any, dict[str, Any], dict[str, Any], dict[str, str]] | None, int]]
    ) -> None:
        """Count rows by distinct places: ((key, fields, payload, problems by field), rows) each."""
        triples = self._triples
        for info, count in entries:
            if info is None:
                continue
            key, fields, payload, problems = info
            entry = triples.get(key)
            if entry is None:
                triples[key] = [count, self._describe(fields, payload, problems)]
            else:
                entry[0] += count

    @staticmethod
    def _describe(
        fields: dict[str, Any], payload: dict[str, Any], problems: dict[str, str]
    ) -> list[tuple[str, str, str, str, str]]:
        """(field, written, where, sent, problem) of each location field a row has."""
        country = payload.get("country")
        country_where = country if isinstance(country, str) and len(country) == 2 else ""
        state = payload.get("state")
        described: list[tuple[str, str, str, str, str]] = []
        for name in _FIELDS:
            raw = fields.get(name)
            written = raw.strip() if isinstance(raw, str) else "" if raw is None else str(raw)
            sent = payload.get(name)
            if not written and sent is None:
                continue
            where = "" if name == "country" else country_where
            if name == "city" and isinstance(state, str):
                where = f"{where} {state}".strip()
            described.append((name, written, where, "" if sent is None else str(sent), problems.get(name, "")))
        return described

    def _counts(self) -> dict[tuple[str, str, str, str, str], int]:
        """(field, written, where, sent, problem) -> rows, over every distinct row seen."""
        counts: dict[tuple[str, str, str, str, str], int] = {}
        for rows, described in self._triples.values():
            for value in described:
                counts[value] = counts.get(value, 0) + rows
        return counts

    def rows(self) -> list[ReviewRow]:
        """Every distinct value, problems first, then notes, then the rest; most rows first within each."""
        found = [ReviewRow(f, w, where, sent, problem, n) for (f, w, where, sent, problem), n in self._counts().items()]
        # Fully ordered by what a row shows, so the report never depends on which row came first.
        found.sort(
            key=lambda r: (
                r.severity,
                -r.rows,
                _FIELDS.index(r.field),
                r.written.casefold(),
                r.written,
                r.where,
                r.sent,
            )
        )
        return found

    def __len__(self) -> int:
        return len(self._triples)

    def table(self, limit: int = 40) -> Table:
        """A rich table of the first ``limit`` rows of the review."""
        rows = self.rows()
        table = Table(title=f"Locations review ({len(rows)} distinct values, worst first)", title_justify="left")
        for column in ("field", "written", "where", "sent", "problem or note", "rows"):
            table.add_column(column, overflow="fold", justify="right" if column == "rows" else "left")
        for r in rows[:limit]:
            style = "red" if r.severity == 0 else "yellow" if r.severity == 1 else None
            table.add_row(r.field, r.written or "(empty)", r.where, r.sent, r.problem, f"{r.rows:,}", style=style)
        if len(rows) > limit:
            table.caption = f"{len(rows) - limit} more; --locations-report PATH writes them all as CSV"
        return table

    def write_csv(self, path: Path) -> None:
        """Write the whole review as CSV (UTF-8, header first)."""
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for r in self.rows():
                writer.writerow([r.field, r.written, r.where, r.sent, r.problem, r.rows])
