"""CSV and TSV: the delimiter sniffer and the chunked reader with physical line numbers."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, BinaryIO

from ..chunk import CHUNK_ROWS, Chunk
from ..encodings import (
    ESCAPED,
)
from ..errors import InputError
from . import _arrow
from ._arrow import arrow_chunks, skip_lines
from ._cells import CellFixer, clean_headers
from ._common import _SNIFF_CHARS, DELIMITERS, MAX_FIELD_CHARS


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


def _read_csv(
    name: str,
    display: str,
    text: io.TextIOWrapper,
    delimiter: str,
    failure: Callable[[UnicodeDecodeError], InputError],
    notes: list[str],
    undecodable: Callable[[int, str], str | None] | None,
    apostrophes: bool = True,
    raw: Callable[[], contextlib.AbstractContextManager[BinaryIO]] | None = None,
) -> tuple[list[str], Iterator[Chunk]]:
    """The header and the chunks of a CSV; ``raw`` opens the file's bytes again when they are known
    to be UTF-8, for the blocks pyarrow can parse (``_arrow``)."""
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

    def exact(source: Any, base: int, size: int) -> Iterator[Chunk]:
        return _csv_chunks(name, display, source, headers, failure, fixer, undecodable, size or CHUNK_ROWS, base)

    if raw is not None and _arrow.ENABLED and len(record) == len(headers) and len(headers) > 1:
        return headers, _fast_chunks(name, display, raw, reader, headers, delimiter, fixer, exact)
    return headers, exact(reader, 0, 0)


def _fast_chunks(
    name: str,
    display: str,
    raw: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
    reader: Any,
    headers: list[str],
    delimiter: str,
    fixer: CellFixer,
    exact: Callable[[Any, int, int], Iterator[Chunk]],
) -> Iterator[Chunk]:
    """The chunks after the header, read by pyarrow where it can (``_arrow.arrow_chunks``)."""
    header_lines = reader.line_num
    with raw() as handle:
        skipped = skip_lines(handle, header_lines, display)
        if skipped is None:  # a lone CR in the lines up to the header: the stdlib reader alone
            yield from exact(reader, 0, 0)
            return
        yield from arrow_chunks(name, display, handle, skipped[0], headers, header_lines + 1, delimiter, fixer, exact)


def _csv_chunks(
    name: str,
    display: str,
    reader: Any,
    headers: list[str],
    failure: Callable[[UnicodeDecodeError], InputError],
    fixer: CellFixer,
    undecodable: Callable[[int, str], str | None] | None,
    size: int = CHUNK_ROWS,
    base: int = 0,
) -> Iterator[Chunk]:
    """The records of a CSV as tabular chunks (the reader's line 1 is line ``base + 1``); the rows
    read before the file breaks come out first."""
    chunk = Chunk(name, headers)
    try:
        width = len(headers)
        previous = base + reader.line_num
        fix = fixer.fix
        # A file checked ahead without an apostrophe or a bad byte in it needs no look at its cells.
        checking = fixer.apostrophes or undecodable is not None
        while True:
            try:
                for record in reader:
                    line = previous + 1
                    previous = base + reader.line_num
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
                            chunk.numbers.append(line)
                            chunk.records.append(record)
                    else:
                        _append(chunk, line, record, width)
                    if len(chunk.rows) >= size:
                        yield chunk
                        chunk = Chunk(name, headers)
                break
            except csv.Error as exc:
                line = previous + 1
                previous = base + reader.line_num
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
        chunk.numbers.append(line)
        chunk.records.append(record)
