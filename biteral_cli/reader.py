"""Read customer exports (CSV/TSV, JSON Lines, JSON, Excel, gzip, stdin) into SourceRows, streamed.

Reading changes no value but two marks that are not data: every CSV/Excel cell is text as written
(``""`` when empty) less a spreadsheet's text marker (``'+1416...``) or the formula guard of this
tool's own report fed back in (see ``CellFixer``); JSON values keep their JSON types. A file is
checked whole, as bytes, before its rows are read (its encoding, line by line when it mixes UTF-8
and cp1252), then parsed in chunks, so memory stays flat whatever the file size; Excel holds one
sheet at a time.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, islice
from types import TracebackType
from typing import Any, BinaryIO

import python_calamine

from .chunk import CHUNK_ROWS, Chunk, chunked, rows_of
from .encodings import (
    ESCAPED,
    FALLBACK_ERRORS,
    MIXED,
    ByteStream,
    canonical_encoding,
    check_decodes,
    decode_error_message,
    decoding,
    detect_encoding,
    escaped_byte,
    looks_binary,
    read_block,
    scan_utf8,
)
from .errors import InputError, UsageError
from .records import REPORT_COLUMNS, SourceRow
from .report import unguard

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
_JSON_CHUNK_CHARS = 1 << 20
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


def open_source(path: str, options: ReadOptions, *, stdin: BinaryIO | None = None) -> Source:
    """Open one input (a path or "-"), detect its format/encoding/delimiter, read its header;
    raise InputError with one clear line.

    Detection: ``--format`` wins; otherwise the extension (``.gz`` removed) decides, except that
    content overrides a wrong extension between text and spreadsheet (an ``.xlsx`` that is really
    CSV is read as CSV, a ``.csv`` that is really a workbook as a workbook), with a note. Standard
    input is always recognised by content. A JSON document that is an object rather than an array
    is read as the list held by its first member whose value is an array of objects (such as
    ``{"customers": [...]}``; other members are ignored); an object with no such member is an
    error. A ``.json`` file holding one object per line is read as JSON Lines.
    """
    display = "standard input" if path == "-" else path
    closers: list[Callable[[], object]] = []
    try:
        return _open(path, display, options, stdin, closers)
    except BaseException:
        _close_all(closers)
        raise


def content_hash(path: str) -> str:
    """sha256 hex of the file's bytes, read in chunks (used by --resume)."""
    if path == "-":
        raise InputError("standard input cannot be hashed; --resume needs a file")
    handle = _open_file(path, path)
    digest = hashlib.sha256()
    with handle:
        while True:
            chunk = read_block(handle, 1 << 20, display=path)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


# --------------------------------------------------------------------------------------------
# Opening and detection


def _open(
    path: str,
    display: str,
    options: ReadOptions,
    stdin: BinaryIO | None,
    closers: list[Callable[[], object]],
) -> Source:
    notes: list[str] = []
    if path == "-":
        raw: BinaryIO = stdin if stdin is not None else sys.stdin.buffer
        by_name: str | None = None
        extension = ""
    else:
        raw = _open_file(path, display)
        closers.append(raw.close)
        by_name, extension = _format_from_name(path)

    head = read_block(raw, PEEK_BYTES, display=display)
    stream: BinaryIO = raw
    compressed = head.startswith(_GZIP_MAGIC)
    if compressed:
        prefixed = ByteStream(head, raw, display=display, close_source=False)
        gz = gzip.GzipFile(fileobj=prefixed, mode="rb")
        closers.append(gz.close)
        stream = gz  # type: ignore[assignment]
        head = read_block(gz, PEEK_BYTES, display=display)
    if not head:
        raise InputError(f"{display}: the file is empty")
    at_eof = len(head) < PEEK_BYTES

    container = _container_format(head)
    fmt: str | None
    if options.format is not None:
        fmt = options.format
    elif path == "-":
        fmt = container  # None: a text format, decided once the text is decoded
    elif by_name is None:
        shown = extension or "no extension"
        raise InputError(f"{display}: unknown file type ({shown}); pass --format ({', '.join(FORMATS)})")
    elif by_name in EXCEL_FORMATS and container is None:
        if _looks_like_markup(head):
            raise InputError(
                f"{display}: is an HTML/XML document with a {extension} name, not a workbook; "
                "open it in a spreadsheet program and save it as .xlsx or CSV"
            )
        fmt = None
        notes.append(f"{display}: has a {extension} name but holds text; read by its content")
    elif container is not None and container != by_name:
        fmt = container
        notes.append(f"{display}: has a {extension} name but is a {container} workbook; read as such")
    else:
        fmt = by_name

    if fmt in EXCEL_FORMATS:
        if compressed:
            raise InputError(f"{display}: gzip-compressed workbooks are not supported; unzip it first")
        return _open_excel(path, display, fmt, raw, head, options, closers, notes)
    return _open_text(path, display, fmt, stream, head, at_eof, options, closers, notes)


def _open_file(path: str, display: str) -> BinaryIO:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{display}: no such file") from None
    except PermissionError:
        raise InputError(f"{display}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{display}: cannot open: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{display}: is a directory, not a file")
    try:
        return open(path, "rb")  # the Source closes it
    except PermissionError:
        raise InputError(f"{display}: permission denied (cannot read the file)") from None
    except OSError as exc:
        raise InputError(f"{display}: cannot open: {exc.strerror or exc}") from exc


def _format_from_name(path: str) -> tuple[str | None, str]:
    name = os.path.basename(path).lower()
    name = name.removesuffix(".gz")
    extension = os.path.splitext(name)[1]
    return EXTENSIONS.get(extension), extension


def _container_format(head: bytes) -> str | None:
    """Name the workbook format the bytes are, or None when they are not a workbook container."""
    if head.startswith(_OLE_MAGIC):
        return "xls"
    if not head.startswith(_ZIP_MAGIC):
        return None
    if head[30 : 30 + len(_ODS_MIMETYPE)] == _ODS_MIMETYPE:
        return "ods"
    return "xlsx"


def _looks_like_markup(head: bytes) -> bool:
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith(_MARKUP_STARTS)


def _close_all(closers: list[Callable[[], object]]) -> None:
    while closers:
        closer = closers.pop()
        with contextlib.suppress(OSError, python_calamine.CalamineError):
            closer()  # the inputs are read-only: failing to close one loses nothing


# --------------------------------------------------------------------------------------------
# Text formats


def _open_text(
    path: str,
    display: str,
    fmt: str | None,
    stream: BinaryIO,
    head: bytes,
    at_eof: bool,
    options: ReadOptions,
    closers: list[Callable[[], object]],
    notes: list[str],
) -> Source:
    given = options.encoding is not None
    if looks_binary(head, options.encoding):
        raise InputError(
            f"{display}: does not look like a text file (CSV/JSON); if it is a spreadsheet, save it as .xlsx; "
            "if it is UTF-16 text without a byte order mark, pass --encoding utf-16-le (or utf-16-be)"
        )
    encoding, errors, apostrophes = _choose_encoding(path, display, head, at_eof, options, notes)
    try:
        sample = codecs.getincrementaldecoder(decoding(encoding)[0])(errors).decode(head, final=at_eof)
    except UnicodeDecodeError as exc:
        offset = len(head) - len(exc.object) + exc.start
        raise InputError(decode_error_message(display, encoding, offset, given=given)) from exc
    stripped = sample.lstrip(" \t\r\n\ufeff")
    if at_eof and not stripped:
        raise InputError(f"{display}: the file is empty")

    if fmt is None:
        fmt = "json" if stripped[:1] in ("[", "{") else "csv"
        if notes:
            notes[-1] = notes[-1].replace("read by its content", f"read as {fmt}")

    data = ByteStream(head, stream, display=display, close_source=False)
    text = io.TextIOWrapper(data, encoding=decoding(encoding)[0], errors=errors, newline="")
    closers.append(text.close)
    # Only a stream that could not be checked ahead (standard input) may hold undecodable lines.
    undecodable = _undecodable(encoding, given=given) if errors == "surrogateescape" else None

    def failure(exc: UnicodeDecodeError) -> InputError:
        offset = data.position - len(exc.object) + exc.start
        return InputError(decode_error_message(display, encoding, offset, given=given))

    if fmt in ("csv", "tsv"):
        delimiter = options.delimiter or ("\t" if fmt == "tsv" else sniff_delimiter(sample, complete=at_eof))
        headers, chunks = _read_csv(path, display, text, delimiter, failure, notes, undecodable, apostrophes)
        notes.append(_read_as(display, fmt, encoding, delimiter))
        if len(headers) == 1 and (hint := _delimiter_hint(headers[0])):
            notes.append(f"{display}{hint}")
        return Source(
            name=path,
            format=fmt,
            encoding=encoding,
            delimiter=delimiter,
            headers=headers,
            chunks=chunks,
            closers=closers,
            notes=notes,
        )

    kind = fmt
    first = stripped[:1]
    if fmt == "jsonl" and first == "[":
        kind = "json"
        notes.append(f"{display}: holds a JSON array, not JSON Lines; read as a JSON array")
    elif fmt == "json" and first == "{" and _looks_like_json_lines(stripped):
        kind = "jsonl"
        notes.append(f"{display}: holds one JSON object per line; read as JSON Lines")
    elif fmt == "json" and first not in ("[", "{"):
        raise InputError(f"{display}: is not a JSON array of records (it starts with {first!r})")

    decoder = _StrictJson()
    notes.append(_read_as(display, kind, encoding, None))
    if kind == "jsonl":
        records = _jsonl_rows(path, text, decoder, undecodable)
    else:
        records = _json_rows(path, _JsonScanner(text, display, decoder))
    guarded = _guard_decoding(records, failure)
    peeked = list(islice(guarded, HEADER_PEEK_RECORDS))
    columns: dict[str, None] = {}
    for record in peeked:
        columns.update(dict.fromkeys(record.cells))
    return Source(
        name=path,
        format=kind,
        encoding=encoding,
        delimiter=None,
        headers=list(columns),
        rows=chain(peeked, guarded),
        closers=closers,
        notes=notes,
    )


def _choose_encoding(
    path: str, display: str, head: bytes, at_eof: bool, options: ReadOptions, notes: list[str]
) -> tuple[str, str, bool]:
    """The encoding to read a text input with (a name for the user), the codec error handler, and
    whether the text may hold an apostrophe (false only for a file checked ahead that holds none).

    A file is checked whole, as bytes, before anything is sent: with ``--encoding`` every byte
    must decode; otherwise each line is UTF-8 when it is valid UTF-8 and cp1252 when not, so a
    cp1252 export with a few UTF-8 lines (or the reverse) is read without mojibake. Standard input
    cannot be read twice: it is read UTF-8 first with cp1252 for the bytes that are not, or, in an
    encoding that was given or marked by a UTF-16 BOM, with undecodable lines rejected one by one.
    """
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if path == "-":
        encoding = options.encoding or detect_encoding(head, at_eof=at_eof)
        if options.encoding is None and not utf16:
            if encoding in ("cp1252", "latin-1"):
                encoding = MIXED  # a UTF-8 line further down must not turn into mojibake
            notes.append(f"{display}: a line that is not valid UTF-8 is read as cp1252")
            return encoding, FALLBACK_ERRORS, True
        return encoding, "surrogateescape", True
    if options.encoding is not None or utf16:
        encoding = options.encoding or detect_encoding(head, at_eof=at_eof)
        with _reopen(path, display) as whole:
            check_decodes(whole, encoding, display=display)
        return encoding, "strict", True
    with _reopen(path, display) as whole:
        scan = scan_utf8(whole, display=display)
    encoding = scan.encoding(bom=head.startswith(codecs.BOM_UTF8))
    if encoding == MIXED:
        shown = ", ".join(str(n) for n in scan.other_lines[:5]) + (", ..." if len(scan.other_lines) > 5 else "")
        notes.append(
            f"{display}: UTF-8 with {len(scan.other_lines)} line(s) in cp1252 (line {shown}); "
            "each line is read in its own encoding"
        )
    return encoding, decoding(encoding)[1], scan.apostrophes


@contextlib.contextmanager
def _reopen(path: str, display: str) -> Iterator[BinaryIO]:
    """A second handle on a file, decompressed when it is gzip, for a pass over all its bytes."""
    with _open_file(path, display) as handle:
        compressed = read_block(handle, 2, display=display) == _GZIP_MAGIC
        handle.seek(0)
        if not compressed:
            yield handle
            return
        with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
            yield unzipped  # type: ignore[misc]


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


def _undecodable(encoding: str, *, given: bool) -> Callable[[int, str], str | None]:
    """A check that names the bad byte of a line read with ``surrogateescape``, or None when it has none."""
    hint = "check --encoding" if given else "pass --encoding"

    def check(line: int, text: str) -> str | None:
        byte = escaped_byte(text)
        if byte is None:
            return None
        return f"line {line}: not valid {encoding.removesuffix('-sig')} (byte 0x{byte:02X}); {hint}"

    return check


def _guard_decoding(
    rows: Iterator[SourceRow], failure: Callable[[UnicodeDecodeError], InputError]
) -> Iterator[SourceRow]:
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise failure(exc) from exc


def sniff_delimiter(sample: str, *, complete: bool) -> str:
    """Pick the delimiter among DELIMITERS that splits the sample's whole lines most consistently.

    The winner gives the header at least two cells and the most records with as many cells as
    the header (then the most cells); a file with none of them is single-column: ``,``.
    """
    if len(sample) > _SNIFF_CHARS:
        sample, complete = sample[:_SNIFF_CHARS], False  # 200 records rarely need more
    if not complete:
        cut = sample.rfind("\n")
        if cut > 0:
            sample = sample[: cut + 1]
    best = ","
    best_score: tuple[float, int] | None = None
    for delimiter in DELIMITERS:
        if delimiter not in sample:
            continue
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=False)
        try:
            records = [record for record in islice(reader, 200) if any(record)]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        rest = records[1:]
        if not complete and len(rest) > 1:
            rest = rest[:-1]  # the sample may end inside a quoted multi-line cell
        agree = sum(len(record) == width for record in rest) / len(rest) if rest else 1.0
        score = (agree, width)
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best


def clean_headers(names: Iterable[str], display: str) -> list[str]:
    """Trim header names (whitespace, BOM), drop trailing empty ones, name inner empty ones
    ``column_N``, and raise InputError naming any duplicates."""
    cleaned = [name.strip().strip("\ufeff").strip() for name in names]
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    if not cleaned:
        raise InputError(f"{display}: the header row is empty")
    cleaned = [name or f"column_{index}" for index, name in enumerate(cleaned, 1)]
    duplicates = [name for name, count in Counter(cleaned).items() if count > 1]
    if duplicates:
        shown = ", ".join(repr(name) for name in duplicates)
        raise InputError(f"{display}: duplicate column names: {shown}; each column needs its own name")
    return cleaned


def _read_csv(
    name: str,
    display: str,
    text: io.TextIOWrapper,
    delimiter: str,
    failure: Callable[[UnicodeDecodeError], InputError],
    notes: list[str],
    undecodable: Callable[[int, str], str | None] | None,
    apostrophes: bool = True,
) -> tuple[list[str], Iterator[Chunk]]:
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)
    # strict: text after a closing quote is a rejected row, not silently glued onto the cell.
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
    previous = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            raise InputError(f"{display}: has no header row (only empty lines)") from None
        except csv.Error as exc:
            raise InputError(f"{display}: line {previous + 1}: cannot read the header: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise failure(exc) from exc
        if any(cell.strip() for cell in record):
            break
        previous = reader.line_num
    fixer = CellFixer(display, record, notes, apostrophes=apostrophes)
    headers = clean_headers(fixer.headers, display)
    fixer.headers = headers
    return headers, _csv_chunks(name, display, reader, headers, failure, fixer, undecodable)


def _csv_chunks(
    name: str,
    display: str,
    reader: Any,
    headers: list[str],
    failure: Callable[[UnicodeDecodeError], InputError],
    fixer: CellFixer,
    undecodable: Callable[[int, str], str | None] | None,
    size: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """The records of a CSV as tabular chunks; the rows read before the file breaks come out first."""
    chunk = Chunk(name, headers)
    try:
        width = len(headers)
        previous = reader.line_num
        fix = fixer.fix
        # A file checked ahead without an apostrophe or a bad byte in it needs no look at its cells.
        checking = fixer.apostrophes or undecodable is not None
        while True:
            try:
                for record in reader:
                    line = previous + 1
                    previous = reader.line_num
                    if checking:
                        joined = "\x00".join(record)  # one C-level scan; a per-cell loop costs 5x
                        if undecodable is not None and (problem := undecodable(line, joined)) is not None:
                            clean = [ESCAPED.sub("\ufffd", cell) for cell in record]
                            chunk.broken(line, dict(zip(headers, clean, strict=False)), problem)
                        else:
                            if "'" in joined:
                                fix(record)
                            _append(chunk, line, record, width)
                    elif len(record) == width:
                        if record[0] or any(record):  # a line of empty cells is no row
                            chunk.rows.append(line)
                            chunk.records.append(record)
                    else:
                        _append(chunk, line, record, width)
                    if len(chunk.rows) >= size:
                        yield chunk
                        chunk = Chunk(name, headers)
                break
            except csv.Error as exc:
                line = previous + 1
                previous = reader.line_num
                message = str(exc)
                if "unexpected end of data" in message:
                    raise InputError(
                        f"{display}: line {line}: a quoted cell is never closed (unterminated quote)"
                    ) from exc
                if "field limit" in message:
                    raise InputError(
                        f"{display}: line {line}: a cell is larger than {MAX_FIELD_CHARS >> 20} MB "
                        "(is a quote left open?)"
                    ) from exc
                if "expected after" in message:
                    message = "text after a closing quote (quote the whole cell and double inner quotes)"
                chunk.broken(line, {}, f"line {line}: {message}")
            except UnicodeDecodeError as exc:
                raise failure(exc) from exc
    except Exception:
        if len(chunk):
            yield chunk  # rows read before the file broke are still processed: none is lost
        raise
    if len(chunk):
        yield chunk


def _append(chunk: Chunk, line: int, record: list[str], width: int) -> None:
    """Add one record of any width: padded when short, rejected when it has cells past the header's."""
    count = len(record)
    if count > width:
        if any(record[width:]):
            cells = dict(zip(chunk.headers, record, strict=False))
            chunk.broken(line, cells, f"line {line}: has {count} cells, header has {width}")
            return
        del record[width:]
    elif count < width:
        record += [""] * (width - count)
    if any(record):
        chunk.rows.append(line)
        chunk.records.append(record)


#: The columns that tell a failure or warning report of this tool from any other CSV.
_REPORT_MARKS = frozenset(column for column in REPORT_COLUMNS if column != "_extra")
#: A spreadsheet's text marker: one apostrophe before a phone number or a digit string ('+1416, '007).
_TEXT_MARKER = re.compile(r"'(?=[+0-9])")


class CellFixer:
    """Undo what a spreadsheet or this tool's own report put in front of text cells.

    In a failure or warning report fed back in, every cell and header loses the one apostrophe
    the report's formula guard added (``report.neutralize`` doubles a real leading apostrophe, so
    this is exact). In any other CSV or sheet, a single leading apostrophe before ``+`` or a digit
    is a spreadsheet's "keep this as text" marker (Shopify writes ``'+14165550182``) and is removed;
    the first removal in each column adds a note.
    """

    def __init__(self, display: str, headers: list[str], notes: list[str], *, apostrophes: bool = True) -> None:
        self.display = display
        self.notes = notes
        self.apostrophes = apostrophes
        """False when the input is known to hold no apostrophe at all: nothing to fix."""
        self.report = {name.strip() for name in headers} >= _REPORT_MARKS
        self.headers = [unguard(name) for name in headers] if self.report else list(headers)
        self.markers: Counter[str] = Counter()
        if self.report:
            notes.append(
                f"{display}: is a biteral-import report; the apostrophe it put in front of "
                "formula-like cells (and doubled apostrophes) is removed"
            )

    def fix(self, record: list[str]) -> None:
        """Rewrite the record's cells in place (called only when some cell holds an apostrophe)."""
        for index, cell in enumerate(record):
            if not cell.startswith("'"):
                continue
            if self.report:
                record[index] = cell[1:]
            elif _TEXT_MARKER.match(cell) is not None:
                record[index] = cell[1:]
                column = self.headers[index] if index < len(self.headers) else f"column_{index + 1}"
                if not self.markers[column]:
                    self.notes.append(
                        f"{self.display}: column {column!r}: a leading apostrophe before + or a digit "
                        f"is a spreadsheet's text marker, not data; removed ({cell} -> {cell[1:]})"
                    )
                self.markers[column] += 1


# --------------------------------------------------------------------------------------------
# JSON Lines and JSON


class _StrictJson:
    """A JSON decoder that notes duplicate keys and NaN/Infinity instead of silently accepting them."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.decoder = json.JSONDecoder(object_pairs_hook=self._pairs, parse_constant=self._constant)

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    self.problems.append(f"duplicate key {key!r}")
                    break
                seen.add(key)
        return result

    def _constant(self, name: str) -> None:
        self.problems.append(f"{name} is not valid JSON")


# A decoded JSON string can hold a lone UTF-16 surrogate only if the text spelled one as an escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PROBLEM = "a lone UTF-16 surrogate escape (such as \\ud800) is not text"


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a string that no UTF-8 file or API could carry."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _looks_like_json_lines(text: str) -> bool:
    """Tell whether text starting with ``{`` has a complete object on its first line and more after."""
    first, _, rest = text.partition("\n")
    try:
        value = json.loads(first)
    except ValueError:
        return False
    return isinstance(value, dict) and bool(rest.strip())


def _jsonl_rows(
    name: str, text: io.TextIOWrapper, strict: _StrictJson, undecodable: Callable[[int, str], str | None] | None
) -> Iterator[SourceRow]:
    decode = strict.decoder.decode
    problems = strict.problems
    for number, line in enumerate(text, 1):
        if not line.strip():
            continue
        if undecodable is not None and (problem := undecodable(number, line)) is not None:
            yield SourceRow(source=name, row=number, cells={}, error=problem)
            continue
        if number == 1 and line.startswith("\ufeff"):
            line = " " + line[1:]  # keep the column numbers of errors right
        try:
            value = decode(line)
        except json.JSONDecodeError as exc:
            problems.clear()
            problem = f"{exc.msg} at column {exc.colno}"
            yield SourceRow(source=name, row=number, cells={}, error=f"line {number}: invalid JSON: {problem}")
            continue
        if problems:
            error = f"line {number}: invalid JSON: {problems[0]}"
            problems.clear()
            yield SourceRow(source=name, row=number, cells={}, error=error)
        elif "\\u" in line and _SURROGATE_ESCAPE.search(line) and _lone_surrogate(value):
            yield SourceRow(source=name, row=number, cells={}, error=f"line {number}: {_SURROGATE_PROBLEM}")
        elif isinstance(value, dict):
            yield SourceRow(source=name, row=number, cells=value)
        else:
            error = f"line {number}: not a JSON object (found {_json_type(value)})"
            yield SourceRow(source=name, row=number, cells={}, error=error)


class _JsonScanner:
    """Walks a JSON document held in a text stream, one value at a time, with a bounded buffer."""

    def __init__(self, text: io.TextIOWrapper, display: str, strict: _StrictJson) -> None:
        self.display = display
        self.strict = strict
        self._text = text
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in the text already dropped from the buffer
        self._column_base = 0  # characters since the last dropped newline
        self._started = False

    def _fill(self, at_least: int = 0) -> bool:
        if self._eof:
            return False
        if self._pos:
            dropped = self._buf[: self._pos]
            newlines = dropped.count("\n")
            if newlines:
                self._lines_before += newlines
                self._column_base = len(dropped) - dropped.rfind("\n") - 1
            else:
                self._column_base += len(dropped)
            self._buf = self._buf[self._pos :]
            self._pos = 0
        chunk = self._text.read(max(at_least, _JSON_CHUNK_CHARS))
        if not chunk:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def peek(self) -> str:
        """Skip whitespace and return the next character, or ``""`` at the end of the text."""
        while True:
            self._pos = _JSON_WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                if not self._started:
                    self._started = True
                    if self._buf[self._pos] == "\ufeff":  # a BOM left by an explicit --encoding utf-8
                        self._pos += 1
                        continue
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, char: str, what: str) -> None:
        """Consume ``char`` after optional whitespace, or raise InputError saying ``what`` was expected."""
        if self.peek() != char:
            raise self.error_here(f"expected {what}")
        self._pos += 1

    def value(self) -> Any:
        """Decode the next complete JSON value, reading more text as needed."""
        self.peek()
        while True:
            self.strict.problems.clear()
            try:
                value, end = self.strict.decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                truncated = exc.msg.startswith("Unterminated string") or exc.pos >= len(self._buf) - 16
                if truncated and not self._eof:
                    self._grow()
                    continue
                raise self.error(exc.pos, exc.msg) from exc
            if end >= len(self._buf) and not self._eof and not isinstance(value, (dict, list, str)):
                self._grow()  # a number at the end of the buffer may go on in the next chunk
                continue
            self._pos = end
            return value

    def _grow(self) -> None:
        pending = len(self._buf) - self._pos
        if pending > MAX_JSON_VALUE_CHARS:
            raise InputError(
                f"{self.display}: a JSON value near line {self._line_col(self._pos)[0]} is larger "
                f"than {MAX_JSON_VALUE_CHARS >> 20} MB or never ends"
            )
        self._fill(pending)  # doubling keeps re-parsing a big value linear overall

    def _line_col(self, pos: int) -> tuple[int, int]:
        newlines = self._buf.count("\n", 0, pos)
        line = self._lines_before + newlines + 1
        column = pos - self._buf.rfind("\n", 0, pos) if newlines else self._column_base + pos + 1
        return line, column

    def error_here(self, message: str) -> InputError:
        """Build the InputError for broken JSON at the current position."""
        return self.error(self._pos, message)

    def error(self, pos: int, message: str) -> InputError:
        """Build the InputError for broken JSON at buffer position ``pos``."""
        line, column = self._line_col(pos)
        return InputError(f"{self.display}: invalid JSON at line {line}, column {column}: {message}")

    def skip_array_rest(self) -> None:
        """Consume the rest of an array whose ``[`` and first value were already consumed."""
        while True:
            char = self.peek()
            if char == "]":
                self._pos += 1
                return
            self.take(",", "',' or ']'")
            self.value()


def _json_rows(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    first = scanner.peek()
    if first == "[":
        scanner.take("[", "'['")
        yield from _json_elements(name, scanner)
    else:
        yield from _json_wrapped(name, scanner)
    if scanner.peek():
        raise scanner.error_here("unexpected text after the end of the JSON document")


def _json_elements(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    """Yield the records of an array whose ``[`` was consumed, through its ``]``."""
    if scanner.peek() == "]":
        scanner.take("]", "']'")
        return
    index = 0
    while True:
        index += 1
        value = scanner.value()
        problems = scanner.strict.problems
        if problems:
            error = f"element {index}: invalid JSON: {problems[0]}"
            yield SourceRow(source=name, row=index, cells={}, error=error)
        elif _lone_surrogate(value):
            yield SourceRow(source=name, row=index, cells={}, error=f"element {index}: {_SURROGATE_PROBLEM}")
        elif isinstance(value, dict):
            yield SourceRow(source=name, row=index, cells=value)
        else:
            error = f"element {index}: not a JSON object (found {_json_type(value)})"
            yield SourceRow(source=name, row=index, cells={}, error=error)
        char = scanner.peek()
        if char == "]":
            scanner.take("]", "']'")
            return
        scanner.take(",", f"',' or ']' after element {index}")


def _json_wrapped(name: str, scanner: _JsonScanner) -> Iterator[SourceRow]:
    """Yield the records of the first member of a top-level object that is an array of objects."""
    scanner.take("{", "'{'")
    found = False
    if scanner.peek() != "}":
        while True:
            key = scanner.value()
            if not isinstance(key, str):
                raise scanner.error_here("expected a member name")
            scanner.take(":", "':'")
            if not found and scanner.peek() == "[":
                scanner.take("[", "'['")
                if scanner.peek() in ("{", "]"):
                    found = True
                    yield from _json_elements(name, scanner)
                else:
                    scanner.value()
                    scanner.skip_array_rest()
            else:
                scanner.value()
            if scanner.peek() == "}":
                break
            scanner.take(",", "',' or '}'")
    scanner.take("}", "'}'")
    if not found:
        raise InputError(
            f"{scanner.display}: is a single JSON object, not a list of records; expected "
            '[{...}, ...], JSON Lines, or an object holding one list such as {"customers": [...]}'
        )


# --------------------------------------------------------------------------------------------
# Excel


def _open_excel(
    path: str,
    display: str,
    fmt: str,
    raw: BinaryIO,
    head: bytes,
    options: ReadOptions,
    closers: list[Callable[[], object]],
    notes: list[str],
) -> Source:
    try:
        if raw.seekable():
            raw.seek(0)
            source: BinaryIO = raw
        else:
            source = io.BytesIO(head + read_block(raw, -1, display=display))
    except OSError as exc:
        raise InputError(f"{display}: cannot read: {exc}") from exc
    label = {"xlsx": "an .xlsx", "xls": "an .xls", "ods": "an .ods"}[fmt]
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(source)
        closers.append(workbook.close)
        sheet_names = list(workbook.sheet_names)
        index = _sheet_index(sheet_names, options.sheet, display)
        sheet = workbook.get_sheet_by_index(index)
        start = sheet.start
        rows = sheet.iter_rows()
    except python_calamine.CalamineError as exc:
        raise InputError(f"{display}: cannot read as {label} workbook: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{display}: cannot read as {label} workbook: {exc}") from exc
    except BaseException as exc:
        # A Rust panic inside calamine (seen on some corrupt files) surfaces as pyo3's
        # PanicException, which derives from BaseException and cannot be imported by name.
        if type(exc).__name__ != "PanicException":
            raise
        raise InputError(f"{display}: cannot read as {label} workbook: the file is corrupt") from exc
    sheet_name = sheet_names[index]
    if start is None:
        raise InputError(f"{display}: sheet {sheet_name!r} is empty{_other_sheets(sheet_names, index)}")
    # python-calamine's iter_rows yields the empty rows above the data too, so the n-th row it
    # yields is sheet row n (a test pins this); it drops only the empty columns on the left.
    numbered = enumerate(rows, 1)
    header_row = 0
    headers: list[str] = []
    for header_row, values in numbered:  # noqa: B007 - the loop stops at the header row
        cells = [_cell_text(value) for value in values]
        if any(cells):
            headers = clean_headers(cells, display)
            break
    if not headers:
        raise InputError(f"{display}: sheet {sheet_name!r} is empty{_other_sheets(sheet_names, index)}")
    fixer = CellFixer(display, headers, notes)
    headers = fixer.headers = clean_headers(fixer.headers, display)
    notes.append(_read_as(display, fmt, None, None, sheet_name) + f" (header on row {header_row})")
    return Source(
        name=path,
        format=fmt,
        encoding=None,
        delimiter=None,
        headers=headers,
        chunks=_excel_chunks(path, numbered, headers, fixer, start[1]),
        closers=closers,
        notes=notes,
        sheet=sheet_name,
        sheets=sheet_names,
    )


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


def _sheet_index(names: list[str], wanted: str | None, display: str) -> int:
    if not names:
        raise InputError(f"{display}: the workbook has no sheets")
    if wanted is None:
        return 0
    if wanted in names:
        return names.index(wanted)
    folded = [index for index, name in enumerate(names) if name.casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    text = wanted.strip()
    if text.isdigit() and int(text) < len(names):
        return int(text)
    shown = ", ".join(repr(name) for name in names)
    raise InputError(f"{display}: no sheet {wanted!r} (--sheet takes a name or a 0-based index); sheets: {shown}")


def _cell_text(value: Any) -> str:
    """Render one Excel cell as the text a user sees, without inventing precision or types."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            if abs(value) < 2**53:
                return str(int(value))
            # Beyond 2**53 a float is no longer an exact integer, and Excel kept only 15 digits
            # anyway: write the integer Excel shows (12345678901234500000), never 1.2e+19.
            return str(int(Decimal(f"{value:.{EXCEL_DIGITS}g}")))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if value is None:
        return ""
    return str(value)


def _excel_chunks(
    name: str,
    numbered: Iterator[tuple[int, list[Any]]],
    headers: list[str],
    fixer: CellFixer,
    first_column: int,
    size: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """The sheet's rows below the header as tabular chunks (empty rows left out)."""
    width = len(headers)
    chunk = Chunk(name, headers)
    for number, values in numbered:
        cells = [value if type(value) is str else _cell_text(value) for value in values]
        if "'" in "\x00".join(cells):
            fixer.fix(cells)
        warnings = [
            _long_number(number, first_column + index, headers, index, cells[index])
            for index, value in enumerate(values)
            if type(value) in (float, int) and not -_LONG < value < _LONG
        ]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        count = len(cells)
        if count > width:
            error = f"row {number}: has {count} cells, header has {width}"
            chunk.broken(number, dict(zip(headers, cells, strict=False)), error)
        else:
            if count < width:
                cells += [""] * (width - count)
            if warnings:
                chunk.warnings[len(chunk.rows)] = warnings
            chunk.rows.append(number)
            chunk.records.append(cells)
        if len(chunk.rows) >= size:
            yield chunk
            chunk = Chunk(name, headers)
    if len(chunk.rows):
        yield chunk


#: Significant digits Excel keeps of a number; the rest of a longer one is lost (set to zeros).
EXCEL_DIGITS = 15
_LONG = 10**EXCEL_DIGITS


def _long_number(row: int, column_index: int, headers: list[str], index: int, text: str) -> tuple[str, str]:
    """The warning for a number Excel cannot hold whole: (column, message naming the cell)."""
    column = headers[index] if index < len(headers) else f"column_{index + 1}"
    letters = ""
    n = column_index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return column, (
        f"cell '{letters}{row}' (column '{column}'): '{text}' has more than {EXCEL_DIGITS} digits; Excel keeps "
        f"only {EXCEL_DIGITS}, so the last ones may be wrong (format the column as text in Excel)"
    )
