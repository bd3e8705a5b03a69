"""CSV/TSV blocks parsed by pyarrow: the fast way through a UTF-8 file, the stdlib reader for the rest.

The file is read in blocks of whole lines (about 1 MB). pyarrow parses a block only when nothing
in it can read differently from the stdlib reader (``_csv``): no quote character, no NUL, no lone
CR, every line exactly as wide as the header (an empty line, a short or long line makes pyarrow
refuse the block). Any other block is read by the stdlib reader on its own, which is exact: a block
the stdlib reader finishes without a quoted cell left open ends on a record boundary. A block that
ends inside a quoted cell (a newline in quotes across the cut), or that the stdlib reader finds
broken, hands the rest of the file to the stdlib reader streaming from that block's first line,
so every message and every row number is the stdlib reader's. Row numbers are physical lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..chunk import Chunk
from ..encodings import ByteStream, read_block
from ..errors import InputError
from ._cells import CellFixer

#: Bytes per block: large enough that pyarrow's per-call cost vanishes, small enough to keep a
#: block's columns (and the payload lines built from them) a few MB.
BLOCK_BYTES = 1 << 20
#: Whether UTF-8 files take this way at all (the tests compare both ways on the same files).
ENABLED = True
#: Rows per chunk for the stdlib reader inside one block (a block never holds more lines).
_BLOCK_ROWS = 1 << 30


def skip_lines(handle: BinaryIO, count: int, display: str) -> tuple[bytes, int] | None:
    """Read past the first ``count`` physical lines of ``handle``; (what was read after them, its
    offset) or None when those lines end in a lone CR (counted differently by the stdlib reader)."""
    data = b""
    start = 0
    for _ in range(count):
        while (end := data.find(b"\n", start)) < 0:
            more = read_block(handle, BLOCK_BYTES, display=display)
            if not more:
                return None
            data += more
        if data.count(b"\r", start, end) != (1 if end > start and data[end - 1 : end] == b"\r" else 0):
            return None
        start = end + 1
    return data[start:], start


def arrow_chunks(
    name: str,
    display: str,
    handle: BinaryIO,
    carry: bytes,
    headers: list[str],
    first_line: int,
    delimiter: str,
    fixer: CellFixer,
    exact: Callable[[Any, int, int], Iterator[Chunk]],
) -> Iterator[Chunk]:
    """Chunks of a UTF-8 CSV from ``handle`` (positioned after the header; ``carry`` read ahead),
    whose first line is number ``first_line``; ``exact(reader, base, size)`` is the stdlib reader's
    chunking of a csv reader whose line 1 is line ``base + 1``."""
    width = len(headers)
    names = [f"c{i}" for i in range(width)]
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False, ignore_empty_lines=False)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    fix = fixer.apostrophes
    line = first_line
    while True:
        more = read_block(handle, BLOCK_BYTES, display=display)
        data = carry + more
        if not data:
            return
        if more:
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no end of line yet: a line longer than a block
                carry = data
                continue
            block, carry = data[:cut], data[cut:]
        else:  # the last line, without a newline at its end
            block, carry = data, b""
        lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        table = None
        if b'"' not in block and b"\x00" not in block and block.count(b"\r") == block.count(b"\r\n"):
            table = _parse(block, names, parse, convert, width)
            if table is not None and table.num_rows != lines:
                table = None
        if table is not None:
            chunk = _chunk(name, headers, table, line, fixer if fix and b"'" in block else None)
            if len(chunk):
                yield chunk
            line += lines
            continue
        read = _exact_block(block, line - 1, delimiter, exact)
        if read is None:  # the block ends inside a quoted cell, or breaks: stream the rest exactly
            stream = ByteStream(block + carry, handle, display=display, close_source=False)
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
            yield from exact(reader, line - 1, 0)
            return
        chunks, consumed = read
        yield from chunks
        line += consumed


def _parse(block: bytes, names: list[str], parse: Any, convert: Any, width: int) -> Any:
    """The block as an arrow table of ``width`` string columns, or None when pyarrow refuses it."""
    options = pacsv.ReadOptions(column_names=names, block_size=len(block) + 64, use_threads=False)
    try:
        table = pacsv.read_csv(pa.py_buffer(block), read_options=options, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_columns == width else None


def _chunk(name: str, headers: list[str], table: Any, line: int, fixer: CellFixer | None) -> Chunk:
    """A chunk of a parsed block: lines of empty cells are no rows; apostrophes fixed as ``_csv`` does."""
    columns = [column.combine_chunks() if column.num_chunks != 1 else column.chunk(0) for column in table.columns]
    if fixer is not None:
        columns = [_fixed(column, index, fixer) for index, column in enumerate(columns)]
    rows: range | list[int] = range(line, line + table.num_rows)
    empty = None
    for column in columns:
        blank = pc.equal(pc.binary_length(column), 0)
        empty = blank if empty is None else pc.and_(empty, blank)
    if empty is not None and pc.any(empty).as_py():
        keep = pc.invert(empty)
        columns = [column.filter(keep) for column in columns]
        rows = [number for number, kept in zip(rows, keep.to_pylist(), strict=True) if kept]
    return Chunk(name, headers, rows=rows, columns_read=columns)


def _fixed(column: Any, index: int, fixer: CellFixer) -> Any:
    """``column`` with the cells that start with an apostrophe fixed by ``fixer`` (one by one: rare)."""
    marked = pc.starts_with(column, "'")
    if not pc.any(marked).as_py():
        return column
    cells = column.filter(marked).to_pylist()
    return pc.replace_with_mask(column, marked, pa.array([fixer.fix_cell(index, cell) for cell in cells], pa.string()))


def _exact_block(
    block: bytes, base: int, delimiter: str, exact: Callable[[Any, int, int], Iterator[Chunk]]
) -> tuple[list[Chunk], int] | None:
    """The chunks of one block read by the stdlib reader and the lines it counted in the block (a
    lone CR ends a line for it), or None when the block cannot be read alone."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True, strict=True
    )
    try:
        return list(exact(reader, base, _BLOCK_ROWS)), reader.line_num
    except InputError:
        return None
