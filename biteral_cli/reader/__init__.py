"""Read customer exports (CSV/TSV, JSON Lines, JSON, Excel, gzip, stdin) into SourceRows, streamed.

Reading changes no value but two marks that are not data: every CSV/Excel cell is text as written
(``""`` when empty) less a spreadsheet's text marker (``'+1416...``) or the formula guard of this
tool's own report fed back in (see ``CellFixer``); JSON values keep their JSON types. A file is
checked whole, as bytes, before its rows are read (its encoding, line by line when it mixes UTF-8
and cp1252), then parsed in chunks, so memory stays flat whatever the file size; Excel holds one
sheet at a time.

This module opens and checks a file and hands it to its format's reader: ``_csv`` (CSV/TSV),
``_json`` (JSON Lines, JSON arrays), ``_excel`` (sheets through python-calamine); ``_cells`` holds
the header and cell fixes the tabular formats share, ``_common`` the formats, limits,
``ReadOptions`` and ``Source``.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from itertools import chain, islice
from typing import BinaryIO

from ..encodings import (
    FALLBACK_ERRORS,
    MIXED,
    ByteStream,
    check_decodes,
    decode_error_message,
    decoding,
    detect_encoding,
    escaped_byte,
    looks_binary,
    read_block,
    scan_utf8,
)
from ..errors import InputError
from ..records import SourceRow

# The public surface: everything else in the package is private to its format's module.
from ._cells import CellFixer, clean_headers
from ._common import (
    _GZIP_MAGIC,
    _MARKUP_STARTS,
    _ODS_MIMETYPE,
    _OLE_MAGIC,
    _ZIP_MAGIC,
    DELIMITERS,
    EXCEL_FORMATS,
    EXTENSIONS,
    FORMATS,
    HEADER_PEEK_RECORDS,
    MAX_FIELD_CHARS,
    MAX_JSON_VALUE_CHARS,
    PEEK_BYTES,
    TEXT_FORMATS,
    ReadOptions,
    Source,
    _close_all,
    _delimiter_hint,
    _read_as,
)
from ._csv import _read_csv, sniff_delimiter
from ._excel import EXCEL_DIGITS, _open_excel
from ._json import _json_rows, _jsonl_rows, _JsonScanner, _looks_like_json_lines, _StrictJson

__all__ = [
    "DELIMITERS",
    "EXCEL_DIGITS",
    "EXCEL_FORMATS",
    "EXTENSIONS",
    "FORMATS",
    "HEADER_PEEK_RECORDS",
    "MAX_FIELD_CHARS",
    "MAX_JSON_VALUE_CHARS",
    "PEEK_BYTES",
    "TEXT_FORMATS",
    "CellFixer",
    "ReadOptions",
    "Source",
    "clean_headers",
    "content_hash",
    "open_source",
    "sniff_delimiter",
]


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
        # A file checked whole as UTF-8 is read again as bytes, in blocks pyarrow parses.
        raw = (lambda: _reopen(path, display)) if path != "-" and encoding in ("utf-8", "utf-8-sig") else None
        headers, chunks = _read_csv(path, display, text, delimiter, failure, notes, undecodable, apostrophes, raw)
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
