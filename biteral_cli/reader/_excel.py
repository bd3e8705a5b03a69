"""Excel and OpenDocument sheets through python-calamine, one sheet at a time."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO

import python_calamine

from ..chunk import CHUNK_ROWS, Chunk
from ..encodings import (
    read_block,
)
from ..errors import InputError
from ._cells import CellFixer, clean_headers
from ._common import ReadOptions, Source, _other_sheets, _read_as


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
            chunk.numbers.append(number)
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
