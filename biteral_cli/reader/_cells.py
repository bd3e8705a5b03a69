"""Header cleaning and the cell fixes every tabular format shares (text markers, report guards)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ..errors import InputError
from ..records import REPORT_COLUMNS
from ..report import unguard


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
            if cell.startswith("'"):
                record[index] = self.fix_cell(index, cell)

    def fix_cell(self, index: int, cell: str) -> str:
        """What cell ``cell`` of column ``index`` (it starts with an apostrophe) holds once fixed."""
        if self.report:
            return cell[1:]
        if _TEXT_MARKER.match(cell) is None:
            return cell
        column = self.headers[index] if index < len(self.headers) else f"column_{index + 1}"
        if not self.markers[column]:
            self.notes.append(
                f"{self.display}: column {column!r}: a leading apostrophe before + or a digit "
                f"is a spreadsheet's text marker, not data; removed ({cell} -> {cell[1:]})"
            )
        self.markers[column] += 1
        return cell[1:]


# --------------------------------------------------------------------------------------------
# JSON Lines and JSON
