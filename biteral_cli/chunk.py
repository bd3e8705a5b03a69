"""A chunk: thousands of consecutive input rows held as columns, with each row's identity.

Every reader feeds the pipeline chunks. A *tabular* chunk (CSV/TSV, Excel) holds one list of text
cells per row, all of the header's width, and hands out columns; a JSON chunk holds each record's
own dict (records need not share keys). Either way ``rows[i]`` is row ``i``'s number as a
spreadsheet or editor shows it, and ``row(i)`` rebuilds the ``SourceRow`` the reports need.

A tabular chunk read by pyarrow (``reader._arrow``) holds its columns as arrow string arrays
instead of per-row lists; ``arrays()`` gives any tabular chunk's columns that way (what the
columnar normalizer works on), and the per-row accessors build a row's cells only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .records import SourceRow

#: Rows per chunk: large enough that per-column work dwarfs per-chunk overhead, small enough to
#: keep memory flat (a 10-column chunk of text is a few MB) and the first request early.
CHUNK_ROWS = 8192


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of one input: their numbers, their cells, and what the reader noticed."""

    source: str
    headers: list[str]
    rows: Sequence[int] = field(default_factory=list)
    """Row numbers as the file shows them (see ``reader.Source``), one per row (a list, or a
    ``range`` for a run of consecutive lines)."""
    records: list[Any] = field(default_factory=list)
    """Tabular: one list of ``len(headers)`` text cells per row. Otherwise: each row's cell dict."""
    tabular: bool = True
    errors: dict[int, str] = field(default_factory=dict)
    """Row index -> why the reader rejects the row (bad JSON, too many cells)."""
    warnings: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    """Row index -> (column, message) the reader noticed (a number Excel could not hold whole)."""
    cells_as_read: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Row index -> cells of a broken tabular row exactly as read (its record is padded to width)."""
    columns_read: list[Any] | None = None
    """A chunk read by pyarrow: one arrow string array per header (``records`` stays empty)."""
    _columns: list[Any] | None = field(default=None, repr=False)
    _fetched: dict[int, list[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def cells(self, index: int) -> dict[str, Any]:
        """Header -> value of row ``index``, as ``SourceRow.cells`` holds it."""
        if not self.tabular:
            return self.records[index]  # type: ignore[no-any-return]
        found = self.cells_as_read.get(index)
        if found is not None:
            return found
        if self.columns_read is not None:
            record = self._fetched.get(index)
            if record is None:
                self.fetch([index])
                record = self._fetched[index]
            return dict(zip(self.headers, record, strict=True))
        return dict(zip(self.headers, self.records[index], strict=True))

    @property
    def numbers(self) -> list[int]:
        """The row numbers as a list to append to (a chunk being built row by row)."""
        assert isinstance(self.rows, list)
        return self.rows

    def fetch(self, indices: Sequence[int]) -> None:
        """Read the cells of rows ``indices`` of an arrow chunk at once (cheaper than one by one)."""
        if self.columns_read is None:
            return
        wanted = [i for i in indices if i not in self._fetched]
        if not wanted:
            return
        taken = pa.array(wanted, pa.int64())
        cells = [column.take(taken).to_pylist() for column in self.columns_read]
        for n, index in enumerate(wanted):
            self._fetched[index] = [column[n] for column in cells]

    def arrays(self) -> list[Any]:
        """Every column of a tabular chunk as an arrow string array, in header order."""
        if self.columns_read is not None:
            return self.columns_read
        if self.records:
            columns = list(zip(*self.records, strict=True))
            return [pa.array(column, pa.string()) for column in columns]
        return [pa.array([], pa.string()) for _ in self.headers]

    def row(self, index: int) -> SourceRow:
        """Row ``index`` as a SourceRow (for the per-row path and the reports)."""
        return SourceRow(
            self.source, self.rows[index], self.cells(index), self.errors.get(index), self.warnings.get(index)
        )

    def source_rows(self) -> Iterator[SourceRow]:
        """Every row as a SourceRow, in order."""
        if self.columns_read is not None:  # an arrow chunk: every cell read at once, not row by row
            return self._arrow_rows()
        return (self.row(index) for index in range(len(self.rows)))

    def _arrow_rows(self) -> Iterator[SourceRow]:
        assert self.columns_read is not None
        headers, source = self.headers, self.source
        records = zip(*(c.to_pylist() for c in self.columns_read), strict=True)
        for number, record in zip(self.rows, records, strict=True):
            yield SourceRow(source, number, dict(zip(headers, record, strict=True)))

    def column(self, name: str) -> list[Any] | tuple[Any, ...] | None:
        """The cells of column ``name`` (a tabular chunk's ``""`` where a broken row had none), or None."""
        if not self.tabular:
            return [record.get(name, "") for record in self.records]
        if name not in self.headers:
            return None
        if self._columns is None and self.columns_read is not None:
            self._columns = [column.to_pylist() for column in self.columns_read]
        if self._columns is None:
            self._columns = list(zip(*self.records, strict=True)) if self.records else [() for _ in self.headers]
        return self._columns[self.headers.index(name)]  # type: ignore[no-any-return]

    def broken(self, line: int, cells: dict[str, Any], error: str) -> None:
        """Append a row the reader rejects, keeping its cells as read for the failure report."""
        index = len(self.rows)
        self.numbers.append(line)
        self.records.append([_text(cells.get(name, "")) for name in self.headers])
        self.errors[index] = error
        self.cells_as_read[index] = cells

    def add(self, row: SourceRow) -> None:
        """Append one row read as a SourceRow (a JSON record, or a reader that yields rows)."""
        index = len(self.rows)
        self.numbers.append(row.row)
        if row.error is not None:
            self.errors[index] = row.error
        if row.warnings:
            self.warnings[index] = row.warnings
        if not self.tabular:
            self.records.append(row.cells)
            return
        self.records.append([_text(row.cells.get(name, "")) for name in self.headers])
        if row.error is not None or len(row.cells) != len(self.headers):
            self.cells_as_read[index] = row.cells


def _text(value: Any) -> str:
    return value if type(value) is str else ""


def chunked(
    source: str, headers: list[str], rows: Iterable[SourceRow], *, tabular: bool, size: int = CHUNK_ROWS
) -> Iterator[Chunk]:
    """Group SourceRows into chunks of ``size``; rows read before an error still come out first."""
    chunk = Chunk(source, headers, tabular=tabular)
    try:
        for row in rows:
            chunk.add(row)
            if len(chunk) >= size:
                yield chunk
                chunk = Chunk(source, headers, tabular=tabular)
    except Exception:
        if len(chunk):
            yield chunk
        raise
    if len(chunk):
        yield chunk


def rows_of(chunks: Iterable[Chunk]) -> Iterator[SourceRow]:
    """Every row of ``chunks`` as a SourceRow, in order (for callers that want rows one by one)."""
    iterator = iter(chunks)
    while (chunk := next(iterator, None)) is not None:
        rows = chunk.source_rows()
        del chunk  # hold no chunk while the next one is read: memory stays one chunk
        yield from rows
        del rows
