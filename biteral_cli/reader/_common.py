"""What every format's reader shares: formats, extensions, limits."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

import python_calamine

from ..chunk import CHUNK_ROWS, Chunk, chunked, rows_of
from ..encodings import (
    canonical_encoding,
)
from ..errors import UsageError
from ..records import SourceRow

FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "json", "xlsx", "xls", "ods")
TEXT_FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "json")
EXCEL_FORMATS: tuple[str, ...] = ("xlsx", "xls", "ods")

#: File name extension (after removing ``.gz``) -> format.
EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xls": "xls",
    ".ods": "ods",
}
#: Delimiters the CSV sniffer chooses among, in order of preference on a tie.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_DELIMITER_WORDS = {
    "tab": "\t",
    "\\t": "\t",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}

PEEK_BYTES = 1 << 20
"""Size of the first block used to detect format, encoding and delimiter."""
MAX_FIELD_CHARS = 32 << 20
"""Largest CSV cell accepted; far above real data, it stops an open quote from eating the file."""
MAX_JSON_VALUE_CHARS = 64 << 20
"""Largest single element of a JSON array that is held in memory."""
HEADER_PEEK_RECORDS = 1000
"""How many JSON records are read ahead to learn the header names."""
_SNIFF_CHARS = 256 << 10

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODS_MIMETYPE = b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet"
_MARKUP_STARTS = (b"<!doctype html", b"<html", b"<table", b"<?xml", b"<head", b"<body")
_JSON_WS = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """How to read inputs; every ``None`` means detect it from the file."""

    format: str | None = None
    """One of FORMATS; overrides detection from the extension and the content."""
    delimiter: str | None = None
    """One character, or ``tab`` / ``\\t`` (also ``comma``, ``semicolon``, ``pipe``)."""
    encoding: str | None = None
    """Any Python text codec name; bytes invalid in it are an error, never replaced."""
    sheet: str | None = None
    """Excel sheet name, or its 0-based index as text (a sheet named like a number wins)."""

    def __post_init__(self) -> None:
        if self.format is not None:
            fmt = self.format.strip().lower().removeprefix(".")
            if fmt not in FORMATS:
                raise UsageError(f"--format must be one of {', '.join(FORMATS)}; got {self.format!r}")
            object.__setattr__(self, "format", fmt)
        if self.delimiter is not None:
            delimiter = _DELIMITER_WORDS.get(self.delimiter.lower(), self.delimiter)
            if len(delimiter) != 1 or delimiter in '"\r\n':
                raise UsageError(
                    "--delimiter must be one character (or 'tab') other than a quote or a line "
                    f"break; got {self.delimiter!r}"
                )
            object.__setattr__(self, "delimiter", delimiter)
        if self.encoding is not None:
            try:
                encoding = canonical_encoding(self.encoding.strip())
            except LookupError:
                raise UsageError(f"--encoding: unknown text encoding {self.encoding!r}") from None
            object.__setattr__(self, "encoding", encoding)
        if self.sheet is not None and not self.sheet.strip():
            raise UsageError("--sheet must be a sheet name or a 0-based sheet index")


class Source:
    """One opened input: what was detected about it, its header names and its lazy rows.

    ``SourceRow.row`` is, for CSV/TSV, the 1-based physical line where the record starts (the
    header is line 1); for JSON Lines the line number; for a JSON array the 1-based index of the
    element in the array; for Excel the sheet row number (the header row is 1 when it is the
    sheet's first row). ``notes`` holds one-line remarks worth showing the user, such as a file
    read by its content rather than its extension.
    """

    def __init__(
        self,
        *,
        name: str,
        format: str,
        encoding: str | None,
        delimiter: str | None,
        headers: list[str],
        rows: Iterator[SourceRow] | None = None,
        chunks: Iterator[Chunk] | None = None,
        closers: list[Callable[[], object]],
        notes: list[str],
        sheet: str | None = None,
        sheets: list[str] | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self.encoding = encoding
        self.delimiter = delimiter
        self.sheet = sheet
        """The sheet read, for a workbook."""
        self.sheets = sheets or []
        """Every sheet of a workbook, in order."""
        self.headers = headers
        self.notes = notes
        self._rows = rows
        self._chunks = chunks
        self._closers = closers
        self._started = False

    def hint(self) -> str:
        """What to try when no column of this input is usable (another sheet or delimiter), or ""."""
        if self.sheet is not None:
            return _other_sheets(self.sheets, self.sheets.index(self.sheet))
        if self.delimiter is not None and len(self.headers) == 1:
            return _delimiter_hint(self.headers[0])
        return ""

    def rows(self) -> Iterator[SourceRow]:
        """Yield every record once, lazily, in file order; raise InputError if the file breaks."""
        self._start("rows")
        if self._rows is not None:
            return self._rows
        assert self._chunks is not None
        return rows_of(self._chunks)

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Chunk]:
        """Yield every record once, lazily, in file order, as chunks of about ``size`` rows; raise
        InputError if the file breaks (after the chunk of the rows read before it)."""
        self._start("chunks")
        if self._chunks is not None:
            return self._chunks
        assert self._rows is not None
        tabular = self.format not in ("json", "jsonl")
        return chunked(self.name, self.headers, self._rows, tabular=tabular, size=size)

    def _start(self, what: str) -> None:
        if self._started:
            raise RuntimeError(f"{what}() of {self.name} can be iterated only once")
        self._started = True

    def close(self) -> None:
        """Release every file handle and workbook this source holds; safe to call twice."""
        _close_all(self._closers)

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Source(name={self.name!r}, format={self.format!r}, encoding={self.encoding!r}, "
            f"delimiter={self.delimiter!r}, headers={len(self.headers)})"
        )


def _read_as(display: str, fmt: str, encoding: str | None, delimiter: str | None, sheet: str | None = None) -> str:
    """The note naming how a file is read: its format, encoding, delimiter or sheet."""
    parts = [f"read as {fmt}"]
    if encoding is not None:
        parts.append(f"encoding {encoding}")
    if delimiter is not None:
        parts.append("delimiter tab" if delimiter == "\t" else f"delimiter {delimiter!r}")
    if sheet is not None:
        parts.append(f"sheet {sheet!r}")
    return f"{display}: " + ", ".join(parts)


def _close_all(closers: list[Callable[[], object]]) -> None:
    while closers:
        closer = closers.pop()
        with contextlib.suppress(OSError, python_calamine.CalamineError):
            closer()  # the inputs are read-only: failing to close one loses nothing


def _delimiter_hint(header: str) -> str:
    """The hint for a one-column header that holds a likely delimiter (; : |), or ""."""
    found = next((char for char in (";", ":", "|") if char in header), None)
    if found is None:
        return ""
    return f"; the header is one column holding {found!r}: if that separates the columns, pass --delimiter '{found}'"


def _other_sheets(names: list[str], index: int) -> str:
    """The hint naming a workbook's other sheets and --sheet, or "" when it has no other."""
    others = [name for i, name in enumerate(names) if i != index]
    if not others:
        return ""
    return f"; the workbook's other sheets: {', '.join(repr(n) for n in others)} (choose one with --sheet)"
