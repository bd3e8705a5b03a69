"""Bad input, table-driven, through the real CLI: each case has an exit code and a message; no traceback.

Every case runs with ``--dry-run`` (reading, mapping and validation are the same as in a real run,
and an input error stops the tool before anything would be sent). The message fragment is looked
for where a user would find it: the terminal, the failure report, the warning report, or the
payloads the run would send (``--output``), which proves that a file was decoded correctly.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, the exit code expected and where the message shows."""

    id: str
    name: str
    make: Callable[[Path], None]
    exit_code: int
    fragment: str
    where: str = "terminal"  # terminal | failures | warnings | payloads
    args: tuple[str, ...] = ()


def data(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def directory(path: Path) -> None:
    path.mkdir()


def unreadable(path: Path) -> None:
    path.write_bytes(b"code,country\nA1,ES\n")
    path.chmod(0)


def nothing(path: Path) -> None:
    pass


WIDE = 100_000
WIDE_HEADER = ",".join(f"c{i}" for i in range(WIDE)).encode()

CASES = [
    Case("missing file", "missing.csv", nothing, 2, "missing.csv: no such file"),
    Case("directory", "folder.csv", directory, 2, "is a directory"),
    Case("no read permission", "locked.csv", unreadable, 2, "permission denied"),
    Case("empty file", "empty.csv", data(b""), 2, "the file is empty"),
    Case("header only", "header.csv", data(b"code,country\n"), 0, "nothing to import"),
    Case("binary data named .csv", "binary.csv", data(bytes(range(256)) * 64), 2, "does not look like a text file"),
    Case("an .xlsx that is a CSV", "sheet.xlsx", data(b"code,country\nA1,ES\n"), 0, "has a .xlsx name but holds text"),
    Case(
        "an .xlsx that is a CSV (sent)",
        "sheet2.xlsx",
        data(b"code,city\nA1,Bilbao\n"),
        0,
        '"city":"Bilbao"',
        "payloads",
    ),
    Case(
        "UTF-16 with BOM", "u16.csv", data("code,city\nA1,Málaga\n".encode("utf-16")), 0, '"city":"Málaga"', "payloads"
    ),
    Case(
        "UTF-16 without BOM", "u16le.csv", data("code,city\nA1,Málaga\n".encode("utf-16-le")), 2, "--encoding utf-16-le"
    ),
    Case(
        "UTF-16 without BOM, encoding given",
        "u16le2.csv",
        data("code,city\nA1,Málaga\n".encode("utf-16-le")),
        0,
        '"city":"Málaga"',
        "payloads",
        ("--encoding", "utf-16-le"),
    ),
    Case(
        "cp1252",
        "cp.csv",
        data("code,city\nA1,Málaga\nA2,Düsseldorf\n".encode("cp1252")),
        0,
        '"city":"Düsseldorf"',
        "payloads",
    ),
    Case(
        "mixed line endings",
        "eol.csv",
        data(b"code,city\r\nA1,Vigo\nA2,Lugo\rA3,Tui\r\n"),
        0,
        '"code":"A3"',
        "payloads",
    ),
    Case("unterminated quote", "quote.csv", data(b'code,city\nA1,"Vigo\nA2,Lugo\n'), 2, "unterminated quote"),
    Case(
        "a row with 100,000 columns",
        "wide.csv",
        data(b"code,city\nA1,Vigo" + b",x" * WIDE + b"\nA2,Lugo\n"),
        1,
        f"has {WIDE + 2} cells, header has 2",
        "failures",
    ),
    Case(
        "a header with 100,000 columns, none a code",
        "wider.csv",
        data(WIDE_HEADER + b"\n" + b"x," * WIDE + b"\n"),
        2,
        f"and {WIDE - 20} more",
    ),
    Case(
        "a 10 MB cell",
        "big.csv",
        # "segment", not "note": a free-text note is personal data and would stay home unsent.
        data(b"code,segment\nA1," + b"x" * (10 << 20) + b"\nA2,ok\n"),
        1,
        "at most 60000 are allowed",
        "failures",
    ),
    Case(
        "JSONL with one broken line in the middle",
        "broken.jsonl",
        data(b'{"code":"A1"}\n{"code": "A2"\n{"code":"A3"}\n'),
        1,
        "line 2: invalid JSON",
        "failures",
    ),
    Case(
        "JSONL: the lines around the broken one are sent",
        "broken2.jsonl",
        data(b'{"code":"A1"}\n{"code": "A2"\n{"code":"A3"}\n'),
        1,
        '"code":"A3"',
        "payloads",
    ),
    Case(
        "JSON object instead of an array",
        "object.json",
        data(b'{"code": "A1", "country": "ES"}'),
        2,
        "is a single JSON object",
    ),
    Case("duplicate headers", "dup.csv", data(b"code,country,country\nA1,ES,FR\n"), 2, "duplicate column names"),
    Case(
        "no column that can be a code",
        "nocode.csv",
        data(b"name,country\nBob,ES\n"),
        2,
        "no column can be the customer code",
    ),
    Case(
        "a code of 256 characters",
        "longcode.csv",
        data(b"code,city\n" + b"C" * 256 + b",Vigo\n"),
        1,
        "at most 255 are allowed",
        "failures",
    ),
    Case(
        "metadata over 60,000 characters",
        "meta.jsonl",
        data(b'{"code":"A1","metadata":{"notes":"' + b"n" * 60_001 + b'"}}\n'),
        1,
        "at most 60000 are allowed",
        "failures",
    ),
    Case(
        "invalid JSON in a metadata column",
        "badmeta.csv",
        data(b"code,metadata\nA1,{plan: pro\n"),
        1,
        "metadata is not valid JSON",
        "failures",
    ),
    Case("year 0", "y0.csv", data(b"code,yearBorn\nA1,0\n"), 0, "not a plausible birth year", "warnings"),
    Case("year -5", "y5.csv", data(b"code,yearBorn\nA1,-5\n"), 0, "not a plausible birth year", "warnings"),
    Case("year 99999", "y9.csv", data(b"code,yearBorn\nA1,99999\n"), 0, "outside 1900-", "warnings"),
    Case(
        "date 31/02/1990",
        "feb.csv",
        data(b"code,birthdate\nA1,31/02/1990\n"),
        0,
        "not a valid year or date",
        "warnings",
    ),
    Case(
        "year 0 with --strict",
        "y0s.csv",
        data(b"code,yearBorn\nA1,0\n"),
        1,
        "not a plausible birth year",
        "failures",
        ("--strict",),
    ),
    # Issue 12: what a new user hit.
    Case(
        "a cp1252 file with UTF-8 lines",
        "mixed.csv",
        data("code,country,city\nA1,España,Málaga\n".encode("cp1252") + "A2,España,Málaga\n".encode()),
        0,
        '{"code":"A2","country":"ES","state":"ES-MA","city":"Málaga"}',  # España read, not EspaÃ±a
        "payloads",
    ),
    Case(
        "a colon-separated file",
        "colon.csv",
        data(b"id:country:city\nC1:ES:Madrid\n"),
        2,
        "pass --delimiter ':'",
    ),
    Case(
        "a Shopify phone with a text marker",
        "shopify.csv",
        data(b"Customer ID,Phone\nC1,'+14165550182\n"),
        0,
        '"metadata":{"Phone":"+14165550182"}',
        "payloads",
        ("--personal-data", "include"),  # a phone is personal data: only sent when asked
    ),
]


pytestmark = pytest.mark.usefixtures("in_tmp")  # each test in its own directory, no BITERAL_ variables


def report_errors(path: Path) -> str:
    """Every ``_error`` cell of a failure or warning report, one per line."""
    csv.field_size_limit(sys.maxsize)  # the report keeps the 10 MB cell as read
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return "\n".join(row["_error"] for row in csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_its_exit_code_and_a_clear_message(case: Case, tmp_path: Path) -> None:
    if case.make is unreadable and os.geteuid() == 0:
        pytest.skip("root can read any file, so 'no read permission' cannot be arranged")
    case.make(tmp_path / case.name)
    args = [case.name, "--dry-run", "--failures", "f.csv", "--warnings", "w.csv", "--output", "out.jsonl"]
    result = CliRunner().invoke(app, [*args, *case.args], env={})
    shown = result.output
    assert "Traceback" not in shown
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == case.exit_code, shown[:2000]
    assert len(shown) < 20_000, "a message must stay readable, whatever the input"
    if case.where == "terminal":
        found = shown
    elif case.where == "payloads":
        found = Path("out.jsonl").read_text(encoding="utf-8")
    else:
        found = report_errors(Path("f.csv" if case.where == "failures" else "w.csv"))
    assert case.fragment in found, found[:2000]
    if case.exit_code == 2:
        # An input error is found before a single row is read into a batch.
        assert not Path("out.jsonl").exists() or Path("out.jsonl").read_bytes() == b""


def test_a_bad_value_in_the_config_file_is_blamed_on_the_file() -> None:
    Path("c.csv").write_text("code\nC1\n", encoding="utf-8")
    Path("biteral-import.toml").write_text('concurrency = "eight"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["c.csv", "--dry-run"], env={})
    assert result.exit_code == 2
    assert "biteral-import.toml: concurrency = 'eight'" in result.output
    assert "BITERAL_CONCURRENCY" not in result.output


def test_a_first_sheet_with_no_usable_column_names_the_other_sheets() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.title = "Read me"
    workbook.active.append(["This export was made on Monday"])
    workbook.create_sheet("Customers").append(["Customer ID", "Country"])
    workbook.save("book.xlsx")
    result = CliRunner().invoke(app, ["book.xlsx", "--dry-run"], env={})
    assert result.exit_code == 2
    assert "the workbook's other sheets: 'Customers' (choose one with --sheet)" in result.output


def test_map_names_how_the_file_was_read_and_suggests_a_delimiter() -> None:
    Path("p.csv").write_text("name|country\nBob|ES\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["map", "p.csv", "--delimiter", ","], env={})
    assert result.exit_code == 2
    assert "pass --delimiter '|'" in result.output
    Path("ok.csv").write_text("code;country\nC1;ES\n", encoding="cp1252")
    result = CliRunner().invoke(app, ["map", "ok.csv"], env={})
    assert result.exit_code == 0, result.output
    assert "ok.csv: read as csv, encoding utf-8, delimiter ';'" in result.output
