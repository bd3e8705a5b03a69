"""Reader tests: every format and quirk a user's export may have, on small files made here."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biteral_cli import reader
from biteral_cli.errors import InputError, UsageError
from biteral_cli.reader import FORMATS, ReadOptions, Source, content_hash, open_source
from biteral_cli.records import SourceRow


def read(path: Path | str, stdin: io.BytesIO | None = None, **options: Any) -> tuple[Source, list[SourceRow]]:
    """Open one input, read every row, close it, and return the source and its rows."""
    with open_source(str(path), ReadOptions(**options), stdin=stdin) as source:
        return source, list(source.rows())


def cells(rows: list[SourceRow]) -> list[dict[str, Any]]:
    return [row.cells for row in rows]


def write(tmp_path: Path, name: str, data: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def make_xlsx(path: Path, rows: list[list[Any]], *, title: str = "Customers", extra_sheet: str | None = None) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    if extra_sheet:
        workbook.create_sheet(extra_sheet).append(["code", "note"])
        workbook[extra_sheet].append(["S1", "second sheet"])
    workbook.save(path)
    return path


MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
)


def make_ods(rows: list[list[Any]]) -> bytes:
    """A minimal OpenDocument spreadsheet (no ODS writer is installed): strings, floats, dates."""
    xml_rows = []
    for row in rows:
        xml_cells = []
        for value in row:
            if value is None:
                xml_cells.append("<table:table-cell/>")
            elif isinstance(value, float | int):
                xml_cells.append(
                    f'<table:table-cell office:value-type="float" office:value="{value}"><text:p>{value}</text:p>'
                    "</table:table-cell>"
                )
            elif isinstance(value, dt.date):
                xml_cells.append(
                    f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
                    f"<text:p>{value}</text:p></table:table-cell>"
                )
            else:
                xml_cells.append(
                    f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
                )
        xml_rows.append("<table:table-row>" + "".join(xml_cells) + "</table:table-row>")
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Clientes">'
        + "".join(xml_rows)
        + "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", MANIFEST, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Options


def test_options_validate_each_flag_by_name() -> None:
    with pytest.raises(UsageError, match="--format"):
        ReadOptions(format="xml")
    with pytest.raises(UsageError, match="--delimiter"):
        ReadOptions(delimiter=";;")
    with pytest.raises(UsageError, match="--delimiter"):
        ReadOptions(delimiter='"')
    with pytest.raises(UsageError, match="--encoding"):
        ReadOptions(encoding="klingon")
    with pytest.raises(UsageError, match="--encoding"):
        ReadOptions(encoding="base64")  # a codec, but not a text encoding
    with pytest.raises(UsageError, match="--sheet"):
        ReadOptions(sheet=" ")


def test_options_accept_spellings_users_type() -> None:
    assert ReadOptions(format=".CSV").format == "csv"
    assert ReadOptions(delimiter="tab").delimiter == "\t"
    assert ReadOptions(delimiter="\\t").delimiter == "\t"
    assert ReadOptions(encoding="Windows-1252").encoding == "cp1252"
    assert set(FORMATS) == {"csv", "tsv", "jsonl", "json", "xlsx", "xls", "ods"}


# ---------------------------------------------------------------------------------------------
# CSV and TSV


def test_csv_values_are_kept_exactly_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "code,country,yearBorn,note\n00123,NA,1990,null\n007,ES,,\n")
    source, rows = read(path)
    assert source.format == "csv" and source.delimiter == "," and source.encoding == "utf-8"
    assert cells(rows) == [
        {"code": "00123", "country": "NA", "yearBorn": "1990", "note": "null"},
        {"code": "007", "country": "ES", "yearBorn": "", "note": ""},
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_whole_lines(tmp_path: Path, delimiter: str) -> None:
    other = ";" if delimiter == "," else ","  # the other candidate appears inside values
    text = f"code{delimiter}name{delimiter}amount\nA1{delimiter}Lopez{other} Ana{delimiter}12{other}5\n"
    source, rows = read(write(tmp_path, "d.csv", text))
    assert source.delimiter == delimiter
    assert cells(rows) == [{"code": "A1", "name": f"Lopez{other} Ana", "amount": f"12{other}5"}]


def test_delimiter_option_overrides_sniffing(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "d.csv", "code;name,x\nA;B,C\n"), delimiter=",")
    assert source.headers == ["code;name", "x"]
    assert cells(rows) == [{"code;name": "A;B", "x": "C"}]


def test_tsv_extension_means_tab(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "t.tsv", "code\tnote\nA1\thas, commas; and | pipes\n"))
    assert (source.format, source.delimiter) == ("tsv", "\t")
    assert cells(rows) == [{"code": "A1", "note": "has, commas; and | pipes"}]


def test_quoted_cells_keep_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    text = 'code,note,city\nA1,"one, two\nthree ""quoted""",Madrid\nA2,plain,Bilbao\n'
    _, rows = read(write(tmp_path, "q.csv", text))
    assert cells(rows)[0] == {"code": "A1", "note": 'one, two\nthree "quoted"', "city": "Madrid"}
    assert [row.row for row in rows] == [2, 4]  # the second record starts on line 4


def test_mixed_line_endings_read_every_row_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", b"code,city\r\nA1,Madrid\nA2,Lugo\r\nA3,Vigo\n")
    _, rows = read(path)
    assert [(row.row, row.cells["code"], row.cells["city"]) for row in rows] == [
        (2, "A1", "Madrid"),
        (3, "A2", "Lugo"),
        (4, "A3", "Vigo"),
    ]


def test_rows_carry_their_physical_line_past_blank_and_empty_lines(tmp_path: Path) -> None:
    _, rows = read(write(tmp_path, "b.csv", "code,city\n\nA1,Madrid\n,\nA2,Lugo\n"))
    assert [(row.row, row.cells["code"]) for row in rows] == [(3, "A1"), (5, "A2")]
    assert all(row.source == str(tmp_path / "b.csv") for row in rows)


def test_headers_are_trimmed_and_the_bom_removed(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "h.csv", "\ufeff code , Country\u00a0\nA1,ES\n"), encoding="utf-8")
    assert source.headers == ["code", "Country"]
    assert cells(rows) == [{"code": "A1", "Country": "ES"}]


def test_empty_header_names_get_a_position_name_and_trailing_ones_are_dropped(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "e.csv", ",code,city,,\n0,A1,Madrid,,\n"))
    assert source.headers == ["column_1", "code", "city"]
    assert cells(rows) == [{"column_1": "0", "code": "A1", "city": "Madrid"}]


def test_duplicate_headers_are_an_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"duplicate column names: 'code', 'city'"):
        open_source(str(write(tmp_path, "d.csv", "code,city, code,email,city\n")), ReadOptions())


def test_short_rows_are_padded_and_long_rows_rejected_with_a_reason(tmp_path: Path) -> None:
    _, rows = read(write(tmp_path, "w.csv", "code,country,city\nA1,ES\nA2,ES,Madrid,extra\nA3,ES,Lugo,,\n"))
    assert rows[0].cells == {"code": "A1", "country": "ES", "city": ""} and rows[0].error is None
    assert rows[1].error == "line 3: has 4 cells, header has 3"
    assert rows[1].cells["code"] == "A2"  # kept so the failure report can name the customer
    assert rows[2].error is None and rows[2].cells["city"] == "Lugo"  # trailing empty cells are not data


def test_row_with_100000_cells_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    wide = ",".join(["x"] * 100_000)
    _, rows = read(write(tmp_path, "wide.csv", f"code,country,city\n{wide}\nA2,ES,Vigo\n"))
    assert rows[0].error == "line 2: has 100000 cells, header has 3"
    assert rows[1].cells == {"code": "A2", "country": "ES", "city": "Vigo"} and rows[1].error is None


@pytest.mark.slow
def test_a_10_mb_cell_is_read_whole(tmp_path: Path) -> None:
    big = "é" * (10 * 1024 * 1024)
    _, rows = read(write(tmp_path, "big.csv", f'code,note\nA1,"{big}"\nA2,small\n'))
    assert len(rows[0].cells["note"]) == len(big) and rows[0].cells["note"] == big
    assert rows[1].cells == {"code": "A2", "note": "small"}


def test_unterminated_quote_is_a_clear_error_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", 'code,note\nA1,fine\nA2,"never closed\nA3,x\nA4,y\n')
    with open_source(str(path), ReadOptions()) as source:
        rows = source.rows()
        assert next(rows).cells["code"] == "A1"
        with pytest.raises(InputError, match=r"u\.csv: line 3: .*never closed \(unterminated quote\)"):
            next(rows)


def test_text_after_a_closing_quote_rejects_only_that_row(tmp_path: Path) -> None:
    _, rows = read(write(tmp_path, "q.csv", 'code,note\nA1,"x"y\nA2,ok\n'))
    assert rows[0].row == 2 and "text after a closing quote" in (rows[0].error or "")
    assert rows[1].cells == {"code": "A2", "note": "ok"} and rows[1].error is None


def test_header_only_file_yields_no_rows(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "h.csv", "code,country\n"))
    assert source.headers == ["code", "country"] and rows == []


# ---------------------------------------------------------------------------------------------
# Encodings


@pytest.mark.parametrize(
    ("encoding", "bom", "detected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
        ("utf-16-le", b"\xff\xfe", "utf-16"),
        ("utf-16-be", b"\xfe\xff", "utf-16"),
        ("cp1252", b"", "cp1252"),
    ],
)
def test_encoding_is_detected(tmp_path: Path, encoding: str, bom: bytes, detected: str) -> None:
    text = "code;ciudad;nota\nA1;Málaga;Ñandú €5\n"
    source, rows = read(write(tmp_path, "e.csv", bom + text.encode(encoding)))
    assert source.encoding == detected
    assert source.headers == ["code", "ciudad", "nota"]
    assert cells(rows) == [{"code": "A1", "ciudad": "Málaga", "nota": "Ñandú €5"}]


def test_latin1_is_chosen_when_bytes_undefined_in_cp1252_appear(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "l.csv", "code,nota\nA1,Ñá\x81\n", encoding="latin-1"))
    assert source.encoding == "latin-1"
    assert cells(rows) == [{"code": "A1", "nota": "Ñá\x81"}]


def test_encoding_option_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "o.csv", "code,nota\nA1,Málaga\n", encoding="cp1252")
    source, rows = read(path, encoding="latin-1")
    assert source.encoding == "iso8859-1" and rows[0].cells["nota"] == "Málaga"


def test_a_cp1252_byte_far_into_a_file_is_found_before_any_row_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12 §4: detection looked at the first block only, and the run died at the first
    # cp1252 byte after it. A file is now checked whole, as bytes, before anything is read.
    monkeypatch.setattr(reader, "PEEK_BYTES", 64)  # the first block holds 64 bytes only
    head = b"code,city\n" + b"A1,Madrid\n" * 20
    path = write(tmp_path, "late.csv", head + "A2,Málaga\n".encode("cp1252"))
    source, rows = read(path)
    assert source.encoding == "cp1252"
    assert rows[-1].cells == {"code": "A2", "city": "Málaga"}
    assert f"{path}: read as csv, encoding cp1252, delimiter ','" in source.notes


def test_a_cp1252_file_with_a_few_utf8_lines_reads_each_line_as_what_it_is(tmp_path: Path) -> None:
    data = (
        "code,country,city\nA1,España,Málaga\n".encode("cp1252")
        + "A2,España,Málaga\n".encode()  # pasted from a UTF-8 source
        + "A3,Perú,Lima\n".encode("cp1252")
    )
    source, rows = read(write(tmp_path, "mixed.csv", data))
    assert source.encoding == "utf-8+cp1252"
    assert [row.cells["country"] for row in rows] == ["España", "España", "Perú"]
    assert [row.cells["city"] for row in rows] == ["Málaga", "Málaga", "Lima"]  # never MÃ¡laga
    assert any("2 line(s) in cp1252 (line 2, 4)" in note for note in source.notes)


def test_a_given_encoding_is_checked_over_the_whole_file_before_any_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "PEEK_BYTES", 64)
    head = b"code,city\n" + b"A1,Madrid\n" * 20
    path = write(tmp_path, "late.csv", head + "A2,Málaga\n".encode("cp1252"))
    offset = len(head) + len(b"A2,M") + 1  # 1-based position of the byte 0xE1
    with pytest.raises(InputError) as caught:
        open_source(str(path), ReadOptions(encoding="utf-8"))  # raised on opening: nothing was read
    assert str(caught.value) == f"{path}: not valid utf-8 at byte {offset} (line 22); check --encoding"


def test_on_stdin_a_cp1252_line_after_the_first_block_is_read_not_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "PEEK_BYTES", 64)
    data = b"code,city\n" + "A0,Córdoba\n".encode() + b"A1,Madrid\n" * 20 + "A2,Málaga\n".encode("cp1252")
    source, rows = read("-", stdin=io.BytesIO(data), format="csv")
    assert source.encoding == "utf-8"
    assert [row.cells["city"] for row in rows][::21] == ["Córdoba", "Málaga"]
    assert all(row.error is None for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_on_stdin_a_line_the_given_encoding_cannot_decode_is_a_rejected_row(fmt: str) -> None:
    lines = (
        [b"code,city", "A1,Málaga".encode(), "A2,Málaga".encode("cp1252"), b"A3,Lima"]
        if fmt == "csv"
        else [
            '{"code":"A1","city":"Málaga"}'.encode(),
            '{"code":"A2","city":"Málaga"}'.encode("cp1252"),
            b'{"code":"A3"}',
        ]
    )
    _, rows = read("-", stdin=io.BytesIO(b"\n".join(lines) + b"\n"), format=fmt, encoding="utf-8")
    line = 3 if fmt == "csv" else 2
    assert [row.error for row in rows] == [None, f"line {line}: not valid utf-8 (byte 0xE1); check --encoding", None]
    assert rows[0].cells["city"] == "Málaga"


def test_wrong_encoding_option_is_an_error_not_replacement_characters(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", "code,city\nA1,Málaga\n", encoding="cp1252")
    with pytest.raises(InputError, match=r"not valid utf-8 at byte 15 \(line 2\); check --encoding"):
        read(path, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# JSON Lines and JSON


def test_jsonl_keeps_json_types_and_nested_objects(tmp_path: Path) -> None:
    lines = [
        {"code": "00123", "isActive": False, "yearBorn": 1990, "metadata": {"tier": "gold", "tags": ["a"]}},
        {"code": "A2", "country": "NA", "city": None, "note": "null"},
    ]
    path = write(tmp_path, "c.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    source, rows = read(path)
    assert source.format == "jsonl"
    assert source.headers == ["code", "isActive", "yearBorn", "metadata", "country", "city", "note"]
    assert cells(rows) == lines
    assert rows[1].cells["city"] is None and rows[1].cells["note"] == "null"


def test_jsonl_broken_line_is_a_rejected_row_with_its_line(tmp_path: Path) -> None:
    text = '{"code": "A1"}\n\n{"code": "A2" "x": 1}\n[1, 2]\n{"code": "A3"}\n'
    _, rows = read(write(tmp_path, "b.ndjson", text))
    assert [(row.row, row.error) for row in rows] == [
        (1, None),
        (3, "line 3: invalid JSON: Expecting ',' delimiter at column 15"),
        (4, "line 4: not a JSON object (found an array)"),
        (5, None),
    ]
    assert rows[1].cells == {} and rows[3].cells == {"code": "A3"}


def test_json_duplicate_keys_and_nan_are_rejected_not_silently_merged(tmp_path: Path) -> None:
    text = '{"code": "A1", "code": "A2"}\n{"code": "A3", "n": NaN}\n{"code": "A4"}\n'
    _, rows = read(write(tmp_path, "d.jsonl", text))
    assert [row.error for row in rows] == [
        "line 1: invalid JSON: duplicate key 'code'",
        "line 2: invalid JSON: NaN is not valid JSON",
        None,
    ]


def test_json_array_rows_are_numbered_by_element(tmp_path: Path) -> None:
    records = [{"code": "A1", "metadata": {"a": 1}}, 7, {"code": "A3", "country": "NA"}]
    source, rows = read(write(tmp_path, "a.json", json.dumps(records, indent=2)))
    assert source.format == "json" and source.headers == ["code", "metadata", "country"]
    assert [(row.row, row.cells, row.error) for row in rows] == [
        (1, {"code": "A1", "metadata": {"a": 1}}, None),
        (2, {}, "element 2: not a JSON object (found a number)"),
        (3, {"code": "A3", "country": "NA"}, None),
    ]


def test_empty_json_array_yields_nothing(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "e.json", " [ ] \n"))
    assert source.headers == [] and rows == []


def test_json_object_holding_a_list_of_records_is_read_as_that_list(tmp_path: Path) -> None:
    text = '{"count": 2, "tags": ["x"], "customers": [{"code": "A1"}, {"code": "A2"}], "next": null}'
    _, rows = read(write(tmp_path, "w.json", text))
    assert cells(rows) == [{"code": "A1"}, {"code": "A2"}]


def test_json_object_that_is_one_record_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"o\.json: is a single JSON object, not a list of records"):
        open_source(str(write(tmp_path, "o.json", '{"code": "A1", "tags": ["vip"]}')), ReadOptions())


def test_broken_json_array_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json", '[{"code": "A1"},\n {"code": "A2",}]')
    with pytest.raises(InputError, match=r"b\.json: invalid JSON at line 2, column 16: Expecting property name"):
        read(path)


def test_json_lines_in_a_json_file_are_read_as_json_lines(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "l.json", '{"code": "A1"}\n{"code": "A2"}\n'))
    assert source.format == "jsonl" and "JSON Lines" in source.notes[0]
    assert cells(rows) == [{"code": "A1"}, {"code": "A2"}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=6),
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_json_array_streams_back_identically_whatever_the_chunk_size(
    records: list[dict[str, Any]], indent: int | None, chunk: int
) -> None:
    data = json.dumps(records, indent=indent, ensure_ascii=False).encode()
    original = reader._json._JSON_CHUNK_CHARS
    reader._json._JSON_CHUNK_CHARS = chunk  # tiny chunks put element boundaries at every possible place
    try:
        _, rows = read("-", stdin=io.BytesIO(data), format="json")
    finally:
        reader._json._JSON_CHUNK_CHARS = original
    assert [row.cells for row in rows] == records
    assert [row.row for row in rows] == list(range(1, len(records) + 1))


# ---------------------------------------------------------------------------------------------
# Excel


def test_xlsx_cells_read_as_the_user_sees_them(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "c.xlsx",
        [
            ["code", "n", "price", "born", "seen", "active"],
            ["00123", 123, 12.5, dt.date(1990, 5, 17), dt.datetime(1990, 5, 17, 10, 0), True],
            [None, None, None, None, None, None],
            ["A3", 34600123456, 0.1, None, None, False],
            [None, 44000],
        ],
    )
    source, rows = read(path)
    assert source.format == "xlsx" and source.headers == ["code", "n", "price", "born", "seen", "active"]
    assert [(row.row, row.cells) for row in rows] == [
        (2, {"code": "00123", "n": "123", "price": "12.5", "born": "1990-05-17",
             "seen": "1990-05-17T10:00:00", "active": "true"}),
        (4, {"code": "A3", "n": "34600123456", "price": "0.1", "born": "", "seen": "", "active": "false"}),
        (5, {"code": "", "n": "44000", "price": "", "born": "", "seen": "", "active": ""}),
    ]  # fmt: skip


def test_xlsx_ignores_empty_trailing_rows_and_columns(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["code", "city"])
    sheet.append(["A1", "Madrid"])
    sheet["F40"] = ""  # an edited-then-cleared cell stretches the used range
    sheet["F40"].number_format = "0.00"
    workbook.save(tmp_path / "t.xlsx")
    source, rows = read(tmp_path / "t.xlsx")
    assert source.headers == ["code", "city"]
    assert cells(rows) == [{"code": "A1", "city": "Madrid"}]


def test_xlsx_header_below_empty_rows_keeps_sheet_row_numbers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet["B3"], sheet["C3"] = "code", "city"
    sheet["B4"], sheet["C4"] = "A1", "Lugo"
    workbook.save(tmp_path / "o.xlsx")
    source, rows = read(tmp_path / "o.xlsx")
    assert source.headers == ["code", "city"]
    assert [(row.row, row.cells) for row in rows] == [(4, {"code": "A1", "city": "Lugo"})]


def test_xlsx_value_beyond_the_header_is_a_rejected_row(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "w.xlsx", [["code", "city"], ["A1", "Lugo", None, "stray"]])
    _, rows = read(path)
    assert rows[0].error == "row 2: has 4 cells, header has 2"


@pytest.mark.parametrize("sheet", ["Other", "other", "1"])
def test_sheet_option_picks_by_name_or_index(tmp_path: Path, sheet: str) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [["code"], ["FIRST"]], extra_sheet="Other")
    source, rows = read(path, sheet=sheet)
    assert cells(rows) == [{"code": "S1", "note": "second sheet"}]
    assert any("'Other'" in note for note in source.notes)


def test_first_sheet_by_default_and_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [["code"], ["FIRST"]], extra_sheet="Other")
    assert cells(read(path)[1]) == [{"code": "FIRST"}]
    with pytest.raises(InputError, match=r"no sheet 'Orders' .*sheets: 'Customers', 'Other'"):
        open_source(str(path), ReadOptions(sheet="Orders"))


def test_duplicate_headers_in_excel_are_an_error(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "d.xlsx", [["code", "code "], ["A1", "A2"]])
    with pytest.raises(InputError, match="duplicate column names: 'code'"):
        open_source(str(path), ReadOptions())


def test_ods_is_read_through_calamine(tmp_path: Path) -> None:
    data = make_ods([["code", "n", "born"], ["00123", 123, dt.date(1990, 5, 17)], [None, None, None], ["A2", 12.5]])
    source, rows = read(write(tmp_path, "c.ods", data))
    assert source.format == "ods"
    assert [(row.row, row.cells) for row in rows] == [
        (2, {"code": "00123", "n": "123", "born": "1990-05-17"}),
        (4, {"code": "A2", "n": "12.5", "born": ""}),
    ]


def test_xlsx_that_is_really_csv_is_read_by_content_with_a_note(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "export.xlsx", "code\tcity\nA1\tMálaga\n", encoding="cp1252"))
    assert (source.format, source.delimiter, source.encoding) == ("csv", "\t", "cp1252")
    assert "holds text" in source.notes[0]
    assert cells(rows) == [{"code": "A1", "city": "Málaga"}]


def test_csv_named_workbook_is_read_as_a_workbook(tmp_path: Path) -> None:
    make_xlsx(tmp_path / "real.xlsx", [["code"], ["A1"]])
    path = write(tmp_path, "fake.csv", (tmp_path / "real.xlsx").read_bytes())
    source, rows = read(path)
    assert source.format == "xlsx" and "xlsx workbook" in source.notes[0]
    assert cells(rows) == [{"code": "A1"}]


def test_html_saved_as_xls_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "report.xls", "<html><body><table><tr><td>code</td></tr></table></body></html>")
    with pytest.raises(InputError, match=r"report\.xls: is an HTML/XML document .*save it as \.xlsx or CSV"):
        open_source(str(path), ReadOptions())


def test_corrupt_workbook_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(InputError, match=r"broken\.xls: cannot read as an \.xls workbook"):
        open_source(str(path), ReadOptions())


# ---------------------------------------------------------------------------------------------
# gzip and standard input


def test_gzip_text_formats_are_decompressed(tmp_path: Path) -> None:
    write(tmp_path, "c.csv.gz", gzip.compress(b"code;city\nA1;Lugo\n"))
    write(tmp_path, "c.jsonl.gz", gzip.compress(b'{"code": "A2"}\n'))
    assert cells(read(tmp_path / "c.csv.gz")[1]) == [{"code": "A1", "city": "Lugo"}]
    source, rows = read(tmp_path / "c.jsonl.gz")
    assert source.format == "jsonl" and cells(rows) == [{"code": "A2"}]


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv.gz", gzip.compress(b"code\n" + b"A1\n" * 1000)[:-12])
    with pytest.raises(InputError, match=r"t\.csv\.gz: cannot read"):
        read(path)


def test_stdin_is_sniffed_or_read_as_told() -> None:
    source, rows = read("-", stdin=io.BytesIO(b"code;city\nA1;Lugo\n"))
    assert (source.name, source.format, source.delimiter) == ("-", "csv", ";")
    assert rows[0].source == "-" and rows[0].cells == {"code": "A1", "city": "Lugo"}
    source, rows = read("-", stdin=io.BytesIO(b'{"code": "A1"}\n{"code": "A2"}\n'))
    assert source.format == "jsonl" and len(rows) == 2
    source, rows = read("-", stdin=io.BytesIO(b"[1"), format="csv")
    assert source.headers == ["[1"]


def test_empty_stdin_is_an_error() -> None:
    with pytest.raises(InputError, match="standard input: the file is empty"):
        open_source("-", ReadOptions(), stdin=io.BytesIO(b""))
    with pytest.raises(InputError, match="standard input cannot be hashed"):
        content_hash("-")


def test_stdin_workbook_is_read(tmp_path: Path) -> None:
    data = make_xlsx(tmp_path / "s.xlsx", [["code"], [123]]).read_bytes()
    source, rows = read("-", stdin=io.BytesIO(data))
    assert source.format == "xlsx" and cells(rows) == [{"code": "123"}]


# ---------------------------------------------------------------------------------------------
# Inputs that cannot be read


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        open_source(str(tmp_path / "nope.csv"), ReadOptions())


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory, not a file"):
        open_source(str(tmp_path), ReadOptions())


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.csv", "code\nA1\n")
    path.chmod(0)
    with pytest.raises(InputError, match=r"locked\.csv: permission denied"):
        open_source(str(path), ReadOptions())


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"  \n\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(InputError, match=r"e\.csv: the file is empty"):
        open_source(str(write(tmp_path, "e.csv", content)), ReadOptions())


def test_binary_garbage_with_a_csv_name(tmp_path: Path) -> None:
    path = write(tmp_path, "garbage.csv", bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"garbage\.csv: does not look like a text file \(CSV/JSON\)"):
        open_source(str(path), ReadOptions())


def test_unknown_extension_needs_format(tmp_path: Path) -> None:
    path = write(tmp_path, "export.dat", "code,city\nA1,Lugo\n")
    with pytest.raises(InputError, match=r"export\.dat: unknown file type \(\.dat\); pass --format"):
        open_source(str(path), ReadOptions())
    assert cells(read(path, format="csv")[1]) == [{"code": "A1", "city": "Lugo"}]


def test_rows_can_be_iterated_only_once(tmp_path: Path) -> None:
    with open_source(str(write(tmp_path, "c.csv", "code\nA1\n")), ReadOptions()) as source:
        assert [row.cells for row in source.rows()] == [{"code": "A1"}]
        with pytest.raises(RuntimeError):
            source.rows()


def test_content_hash_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"code\nA1\n")
    assert content_hash(str(path)) == hashlib.sha256(b"code\nA1\n").hexdigest()
    assert content_hash(str(path)) != content_hash(str(write(tmp_path, "d.csv", b"code\nA2\n")))
    with pytest.raises(InputError, match="no such file"):
        content_hash(str(tmp_path / "gone.csv"))


# ---------------------------------------------------------------------------------------------
# Streaming


@pytest.mark.slow
def test_memory_stays_flat_as_the_file_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "PEEK_BYTES", 64 * 1024)  # keep the fixed detection cost small
    monkeypatch.setattr(reader._arrow, "BLOCK_BYTES", 64 * 1024)  # and the block pyarrow parses

    def peak_for(rows: int) -> int:
        path = tmp_path / f"n{rows}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("code,country,city,note\n")
            handle.writelines(f"{i:08d},ES,Málaga,some note text\n" for i in range(rows))
        tracemalloc.start()
        try:
            with open_source(str(path), ReadOptions()) as source:
                count = sum(1 for _ in source.rows())
            return tracemalloc.get_traced_memory()[1] if count == rows else -1
        finally:
            tracemalloc.stop()

    small, large = peak_for(10_000), peak_for(80_000)  # about 0.4 MB and 3.3 MB of CSV
    assert small > 0 and large > 0
    assert large < small + 300_000  # holding the rows would take tens of megabytes


def test_more_json_shapes(tmp_path: Path) -> None:
    source, rows = read(write(tmp_path, "a.jsonl", '[{"code": "A1"}]'))
    assert source.format == "json" and "JSON array" in source.notes[0] and cells(rows) == [{"code": "A1"}]
    with pytest.raises(InputError, match=r"t\.json: invalid JSON at line 2, column 1: unexpected text after"):
        read(write(tmp_path, "t.json", '[{"code": "A1"}]\nmore'))
    with pytest.raises(InputError, match=r"s\.json: is not a JSON array of records"):
        open_source(str(write(tmp_path, "s.json", '"just a string"')), ReadOptions())


# ---------------------------------------------------------------------------------------------
# Property: any table of strings written as CSV reads back cell for cell

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]


@st.composite
def tables(draw: st.DrawFn, alphabet: st.SearchStrategy[str], min_columns: int) -> list[list[str]]:
    width = draw(st.integers(min_value=min_columns, max_value=5))
    name = st.text(alphabet, min_size=1, max_size=8).filter(lambda n: n == n.strip().strip("\ufeff").strip())
    header = draw(st.lists(name, min_size=width, max_size=width, unique=True))
    cell = st.text(alphabet, max_size=12)
    body = draw(st.lists(st.lists(cell, min_size=width, max_size=width).filter(any), max_size=6))
    return [header, *body]


def as_read(body: list[list[str]]) -> list[list[str]]:
    """The cells as the reader gives them: a spreadsheet's text marker ('+1416, '007) is removed."""
    return [[cell[1:] if re.match(r"'[+0-9]", cell) else cell for cell in row] for row in body]


def csv_bytes(table: list[list[str]], delimiter: str, encoding: str) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(table)
    return buffer.getvalue().encode(encoding)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), delimiter=st.sampled_from(reader.DELIMITERS), encoding=st.sampled_from(ENCODINGS))
def test_any_table_reads_back_cell_for_cell_with_given_delimiter_and_encoding(
    data: st.DataObject, delimiter: str, encoding: str
) -> None:
    codec = "utf-8" if encoding.startswith("utf") else encoding
    alphabet = st.characters(codec=codec, exclude_categories=["Cs", "Cc"], include_characters="\r\n\t\"',;|")
    table = data.draw(tables(alphabet, 1))
    source, rows = read("-", stdin=io.BytesIO(csv_bytes(table, delimiter, encoding)), format="csv",
                        delimiter=delimiter, encoding=encoding)  # fmt: skip
    assert source.headers == table[0]
    assert [list(row.cells.values()) for row in rows] == as_read(table[1:])
    assert all(row.error is None for row in rows)


# Letters whose cp1252 bytes (0xC0-0xFF) can never form valid UTF-8, so detection is unambiguous.
SPANISH = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ñÑáéíóúÁÉÍÓÚüÜ.-@"\n'


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    data=st.data(),
    delimiter=st.sampled_from(reader.DELIMITERS),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_any_table_reads_back_with_detected_delimiter_and_encoding(
    data: st.DataObject, delimiter: str, encoding: str
) -> None:
    alphabet = (
        st.sampled_from(SPANISH)
        if encoding == "cp1252"
        else st.characters(exclude_categories=["Cs", "Cc"], exclude_characters=",;|\t", include_characters='\n"')
    )
    table = data.draw(tables(alphabet, 2))
    data_bytes = csv_bytes(table, delimiter, encoding)
    source, rows = read("-", stdin=io.BytesIO(data_bytes), format="csv")
    # Standard input cannot be checked ahead: non-UTF-8 text is read UTF-8 first, cp1252 where it is not.
    expected = encoding if encoding != "cp1252" else "utf-8" if data_bytes.isascii() else "utf-8+cp1252"
    assert (source.delimiter, source.encoding) == (delimiter, expected)
    assert source.headers == table[0]
    assert [list(row.cells.values()) for row in rows] == as_read(table[1:])


def test_json_lone_surrogate_escapes_are_rejected_rows_and_pairs_are_kept(tmp_path: Path) -> None:
    lines = tmp_path / "s.jsonl"
    lines.write_text('{"code":"A\\ud800"}\n{"code":"B","metadata":{"x":["\\udc00"]}}\n{"code":"C\\ud83d\\ude00"}\n')
    with open_source(str(lines), ReadOptions()) as source:
        rows = list(source.rows())
    assert [r.error for r in rows[:2]] == [
        "line 1: a lone UTF-16 surrogate escape (such as \\ud800) is not text",
        "line 2: a lone UTF-16 surrogate escape (such as \\ud800) is not text",
    ]
    assert rows[2].error is None and rows[2].cells == {"code": "C😀"}
    array = tmp_path / "s.json"
    array.write_text('[{"code":"A\\udfff"},{"code":"B"}]')
    with open_source(str(array), ReadOptions()) as source:
        rows = list(source.rows())
    assert rows[0].error == "element 1: a lone UTF-16 surrogate escape (such as \\ud800) is not text"
    assert rows[1].cells == {"code": "B"}


# --- issue 12 §3: spreadsheet text markers --------------------------------------------------------


def test_a_spreadsheet_text_marker_before_a_plus_or_a_digit_is_removed_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, "shopify.csv", "Customer ID,Phone,Note\n'00123,'+14165550182,'quoted\nC2,'416,''+1\n")
    source, rows = read(path)
    assert cells(rows) == [
        {"Customer ID": "00123", "Phone": "+14165550182", "Note": "'quoted"},  # 'q is data, not a marker
        {"Customer ID": "C2", "Phone": "416", "Note": "''+1"},  # two apostrophes are data too
    ]
    marker_notes = [note for note in source.notes if "text marker" in note]
    assert len(marker_notes) == 2  # one per column, not one per cell
    assert any("'Phone'" in note and "('+14165550182 -> +14165550182)" in note for note in marker_notes)


def test_text_markers_in_a_workbook_are_removed_too(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "book.xlsx", [["Customer ID", "Phone"], ["C1", "'+34600000000"]])
    _, rows = read(path)
    assert cells(rows) == [{"Customer ID": "C1", "Phone": "+34600000000"}]


# --- issue 12 §6: Excel numbers, empty first sheets, one-column headers ------------------------------


def test_excel_integers_are_never_in_scientific_notation_and_long_ones_warn_naming_the_cell(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "ids.xlsx", [["Customer ID", "Account"], ["C1", 12345678901234567890], ["C2", 123456789012345]]
    )
    _, rows = read(path)
    assert rows[0].cells["Account"] == "12345678901234600000"  # Excel shows 15 digits, never 1.2345678901234567e+19
    assert rows[1].cells["Account"] == "123456789012345"
    assert rows[0].warnings is not None
    column, message = rows[0].warnings[0]
    assert column == "Account" and "cell 'B2'" in message and "more than 15 digits" in message
    assert rows[1].warnings is None  # 15 digits fit


def test_an_empty_first_sheet_names_the_other_sheets(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "b.xlsx", [], title="Cover", extra_sheet="Customers")
    with pytest.raises(InputError, match=r"sheet 'Cover' is empty; the workbook's other sheets: 'Customers' \(choose"):
        read(path)


def test_a_one_column_header_holding_a_delimiter_suggests_it(tmp_path: Path) -> None:
    source, _ = read(write(tmp_path, "p.csv", "code|country\nC1|ES\n"), delimiter=",")
    assert any("pass --delimiter '|'" in note for note in source.notes)
    assert "pass --delimiter '|'" in source.hint()


@pytest.mark.parametrize("block", [1, 2, 3, 5])
def test_the_whole_file_check_never_splits_a_character_between_blocks(block: int) -> None:
    from biteral_cli.encodings import scan_utf8

    one_line_json = '[{"A":"\x80€😀ñ"}]'.encode()  # no newline: blocks are cut by character
    scan = scan_utf8(io.BytesIO(one_line_json), display="x.json", block=block)
    assert scan.encoding(bom=False) == "utf-8"
