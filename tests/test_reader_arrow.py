"""The pyarrow way through a UTF-8 CSV reads exactly what the stdlib reader reads.

Every row, row number, cell, reader error and note must be the same whichever way a file is read:
quoted cells, newlines inside quotes across block boundaries, empty lines, lines of empty cells,
short and long lines, CRLF and lone CR, apostrophes (text markers), text after a closing quote and
non-ASCII text. Blocks are made tiny so that every file crosses many block boundaries.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biteral_cli.errors import InputError
from biteral_cli.reader import ReadOptions, _arrow, open_source

_CELLS = st.one_of(
    st.sampled_from(["", "ES", "Spain", "  x ", "O'Brien", "'+34600", "'007", "a;b", "ü", "東京", "''x"]),
    st.text(alphabet="ab,\"\n\r' ", max_size=6),
)


def _read(path: Path, *, fast: bool, block: int, monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    """Everything a reader hands on: headers, rows (number, cells, error), notes; or the error."""
    with monkeypatch.context() as patch:
        patch.setattr(_arrow, "ENABLED", fast)
        patch.setattr(_arrow, "BLOCK_BYTES", block)
        try:
            source = open_source(str(path), ReadOptions())
            with source:
                rows = [(r.row, r.cells, r.error, r.warnings) for r in source.rows()]
            return ("ok", source.headers, rows, list(source.notes))
        except InputError as exc:
            return ("error", str(exc))


def _csv_text(header: list[str], rows: list[list[str]], newline: str) -> str:
    def cell(value: str) -> str:
        return value

    return newline.join(",".join(cell(c) for c in row) for row in [header, *rows]) + newline


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELLS, min_size=1, max_size=5), max_size=25),
    newline=st.sampled_from(["\n", "\r\n"]),
    block=st.sampled_from([16, 64, 200]),
    tail=st.booleans(),
)
@pytest.mark.slow
def test_fast_and_exact_readers_agree_on_any_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[list[str]], newline: str, block: int, tail: bool
) -> None:
    path = tmp_path / "in.csv"
    text = _csv_text(["id", "country", "city"], rows, newline)
    if not tail:
        text = text.rstrip("\r\n")
    path.write_bytes(text.encode("utf-8"))
    fast = _read(path, fast=True, block=block, monkeypatch=monkeypatch)
    exact = _read(path, fast=False, block=block, monkeypatch=monkeypatch)
    assert fast == exact


@pytest.mark.parametrize(
    "text",
    [
        # quoted cells with newlines across every block boundary
        'id,name,city\n1,"a\nb",X\n2,"c,d",Y\n3,e,"f\n\ng"\n4,h,i\n',
        # empty lines and lines of empty cells are no rows; the numbers stay physical lines
        "id,name,city\n\n1,a,b\n,,\n\n2,c,d\n",
        # a short line is padded, a long line with data is rejected, a long empty tail dropped
        "id,name,city\n1,a\n2,b,c,d\n3,e,f,,\n",
        # text after a closing quote is a rejected row
        'id,name,city\n1,"a"b,c\n2,d,e\n',
        # a lone CR ends a line for the stdlib reader
        "id,name,city\r1,a,b\r2,c,d\r",
        # spreadsheet text markers removed (with a note), apostrophes inside names kept
        "id,phone,name\n1,'+34600111222,O'Brien\n2,'007,D'Arcy\n",
        # a BOM before the header, CRLF line ends, non-ASCII text
        "\ufeffid,name,city\r\n1,Zoë,Köln\r\n2,東京,大阪\r\n",
        # blank lines before the header
        "\n\nid,name,city\n1,a,b\n",
    ],
)
@pytest.mark.parametrize("block", [8, 32, 1 << 20])
def test_fast_reader_matches_on_awkward_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, block: int
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(text.encode("utf-8"))
    fast = _read(path, fast=True, block=block, monkeypatch=monkeypatch)
    assert fast == _read(path, fast=False, block=block, monkeypatch=monkeypatch)
    assert fast[0] == "ok"


def test_an_unterminated_quote_is_the_same_error_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,name,city\n1,a,b\n2,"open,c\n3,d,e\n')
    fast = _read(path, fast=True, block=16, monkeypatch=monkeypatch)
    exact = _read(path, fast=False, block=16, monkeypatch=monkeypatch)
    assert fast == exact
    assert fast[0] == "error" and "unterminated quote" in str(fast[1])


def test_a_gzipped_csv_is_read_the_fast_way_with_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(f"C{i},Spain,Madrid\n" for i in range(2000))
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(("id,country,city\n" + rows).encode()))
    fast = _read(path, fast=True, block=1024, monkeypatch=monkeypatch)
    assert fast == _read(path, fast=False, block=1024, monkeypatch=monkeypatch)
    assert fast[0] == "ok"
    numbers = [row[0] for row in fast[2]]  # type: ignore[index]
    assert numbers == list(range(2, 2002))


def test_a_clean_file_is_read_by_pyarrow(tmp_path: Path) -> None:
    """A file with nothing the stdlib reader would read differently comes as arrow columns."""
    path = tmp_path / "in.csv"
    path.write_text("id,country\n" + "".join(f"C{i},ES\n" for i in range(100)), encoding="utf-8")
    with open_source(str(path), ReadOptions()) as source:
        chunks = list(source.chunks())
    assert all(chunk.columns_read is not None for chunk in chunks)
    assert [n for chunk in chunks for n in chunk.rows] == list(range(2, 102))
