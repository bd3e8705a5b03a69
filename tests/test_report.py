"""Failure/warning reports, the tally, and the summary as JSON, table and one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console

from biteral_cli.errors import ReportError
from biteral_cli.records import SourceRow
from biteral_cli.report import (
    REPORT_COLUMNS,
    RowReport,
    Summary,
    Tally,
    check_writable,
    neutralize,
    summary_line,
    summary_table,
    write_summary_json,
)

STABLE_KEYS = {
    "rows",
    "accepted",
    "rejected",
    "failed",
    "skipped",
    "warnings",
    "settled_rate",
    "batches",
    "retries",
    "duration_s",
    "aborted",
    "exit_code",
    "files",
    "errors",
    "records_per_second",
    "dry_run",
    "failures_path",
    "warnings_path",
    "warning_reasons",
    "error",
    "resumed",
    "old_reports",
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+34 600 000 000", "'+34 600 000 000"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Madrid", "Madrid"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralize_prefixes_formula_starts_only(value: str, expected: str) -> None:
    assert neutralize(value) == expected


def test_csv_failure_report_keeps_original_columns_and_adds_context(tmp_path: Path) -> None:
    path = tmp_path / "customers.failures.csv"
    report = RowReport(path, columns=["code", "country", "notes"])
    report.add(
        SourceRow("customers.csv", 3, {"code": "C1", "country": "Atlantis", "notes": "=1+2"}),
        stage="validate",
        field="country",
        error="country: unknown country 'Atlantis'",
    )
    report.add(
        SourceRow("customers.csv", 7, {"code": "-C2", "country": "ES", "notes": 'ok, "quoted"'}),
        stage="api",
        field="",
        error="@the API said no",
    )
    report.close()

    assert report.rows_written == 2
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["code", "country", "notes", *REPORT_COLUMNS]
    first, second = read_csv(path)
    assert first == {
        "code": "C1",
        "country": "Atlantis",
        "notes": "'=1+2",
        "_source": "customers.csv",
        "_row": "3",
        "_stage": "validate",
        "_field": "country",
        "_error": "country: unknown country 'Atlantis'",
        "_extra": "",
    }
    assert second["code"] == "'-C2"
    assert second["notes"] == 'ok, "quoted"'
    assert second["_error"] == "'@the API said no"
    assert second["_stage"] == "api"


def test_csv_report_writes_json_cells_as_compact_json_and_unknown_cells_in_extra(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.csv"
    with RowReport(path, columns=["code", "yearBorn", "metadata"]) as report:
        cells = {
            "code": "C1",
            "yearBorn": -1990,
            "metadata": {"tier": "gold", "tags": ["a", "b"]},
            "isActive": True,
            "nickname": "ñandú",
        }
        report.add(SourceRow("in.jsonl", 1, cells), stage="validate", field="yearBorn", error="x")
    (row,) = read_csv(path)
    assert row["yearBorn"] == "'-1990"
    assert json.loads(row["metadata"]) == {"tier": "gold", "tags": ["a", "b"]}
    assert row["metadata"] == '{"tier":"gold","tags":["a","b"]}'
    assert json.loads(row["_extra"]) == {"isActive": True, "nickname": "ñandú"}


def test_csv_report_fed_back_in_does_not_duplicate_report_columns(tmp_path: Path) -> None:
    # A user fixes yesterday's failure report and imports it: its _ columns are replaced.
    path = tmp_path / "again.failures.csv"
    old = {"code": "C1", "_source": "x.csv", "_row": "4", "_stage": "api", "_error": "old"}
    with RowReport(path, columns=["code", *REPORT_COLUMNS]) as report:
        report.add(SourceRow("fixed.csv", 2, old), stage="validate", field="code", error="new")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["code", *REPORT_COLUMNS]
    (row,) = read_csv(path)
    assert (row["_source"], row["_row"], row["_error"], row["_extra"]) == (
        "fixed.csv",
        "2",
        "new",
        "",
    )


def test_report_is_created_only_when_a_row_is_added(tmp_path: Path) -> None:
    path = tmp_path / "none.failures.csv"
    report = RowReport(path, columns=["code"])
    report.close()
    assert not path.exists()
    assert report.rows_written == 0


def test_report_overwrites_a_previous_run_once_it_has_rows(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("stale content\n" * 10, encoding="utf-8")
    with RowReport(path, columns=["code"]) as report:
        report.add(SourceRow("a.csv", 2, {"code": "C"}), stage="read", field="", error="bad")
    assert [r["code"] for r in read_csv(path)] == ["C"]


def test_jsonl_report_keeps_values_as_read(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    with RowReport(path, fmt="jsonl", columns=["code"]) as report:
        report.add(
            SourceRow("in.json", 4, {"code": "=C1", "yearBorn": 1990, "metadata": {"a": 1}}),
            stage="validate",
            field="yearBorn",
            error="yearBorn: too old",
        )
        report.add(SourceRow("in.json", 5, {}, error="bad JSON"), stage="read", field="", error="e")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "code": "=C1",
            "yearBorn": 1990,
            "metadata": {"a": 1},
            "_source": "in.json",
            "_row": 4,
            "_stage": "validate",
            "_field": "yearBorn",
            "_error": "yearBorn: too old",
        },
        {"_source": "in.json", "_row": 5, "_stage": "read", "_field": "", "_error": "e"},
    ]


def test_report_in_a_missing_directory_fails_with_report_error(tmp_path: Path) -> None:
    report = RowReport(tmp_path / "nope" / "f.csv")
    with pytest.raises(ReportError, match="cannot write"):
        report.add(SourceRow("a.csv", 2, {}), stage="read", field="", error="x")


def test_check_writable_accepts_a_good_path_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    check_writable(path)
    assert list(tmp_path.iterdir()) == []
    path.write_text("keep", encoding="utf-8")
    check_writable(path)
    assert path.read_text(encoding="utf-8") == "keep"


def test_check_writable_refuses_missing_directory_and_directories(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist") as missing:
        check_writable(tmp_path / "missing" / "f.csv")
    assert "\n" not in str(missing.value)
    with pytest.raises(ReportError, match="is a directory"):
        check_writable(tmp_path)


def test_check_writable_refuses_a_nearly_full_disk(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no space left"):
        check_writable(tmp_path / "f.csv", min_free_bytes=1 << 62)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_writable_refuses_a_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ReportError, match="cannot write"):
            check_writable(locked / "f.csv")
    finally:
        locked.chmod(0o700)


def test_tally_counts_per_file_in_input_order() -> None:
    tally = Tally()
    tally.register("b.csv")
    tally.register("empty.csv")
    for outcome in ("accepted", "accepted", "rejected", "skipped"):
        tally.add("b.csv", outcome, "country: unknown country" if outcome == "rejected" else None)
    tally.add("a.csv", "failed", "api: 500")
    tally.add("a.csv", "rejected", "country: unknown country")
    tally.warn("a.csv", "gender: unknown value, sent as 0", 3)

    assert list(tally.files) == ["b.csv", "empty.csv", "a.csv"]
    assert tally.files["empty.csv"].rows == 0
    totals = tally.totals
    assert (totals.rows, totals.accepted, totals.rejected, totals.failed, totals.skipped) == (
        6,
        2,
        2,
        1,
        1,
    )
    assert totals.warnings == 3
    assert tally.errors == {"country: unknown country": 2, "api: 500": 1}


def test_tally_does_not_count_reasons_of_accepted_rows() -> None:
    tally = Tally()
    tally.add("a.csv", "accepted", "ignored")
    assert tally.errors == {}


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.csv", "b.jsonl", "-"]),
            st.sampled_from(["accepted", "rejected", "failed", "skipped"]),
            st.sampled_from([None, "r1", "r2"]),
        ),
        max_size=60,
    )
)
def test_summary_from_any_tally_adds_up(events: list[tuple[str, str, str | None]]) -> None:
    tally = Tally()
    for source, outcome, reason in events:
        tally.add(source, outcome, reason)  # type: ignore[arg-type]
    summary = Summary.from_tally(tally, batches=1, retries=0, duration_s=1.0, aborted=None, exit_code=0)
    summary.check()
    assert summary.rows == len(events)
    assert sum(f["rows"] for f in summary.files.values()) == len(events)
    assert sum(summary.errors.values()) == sum(1 for _, o, r in events if r is not None and o in ("rejected", "failed"))


def make_summary(**overrides: object) -> Summary:
    tally = Tally()
    for _ in range(240):
        tally.add("customers.csv", "accepted")
    for i in range(8):
        tally.add("customers.csv", "rejected", "country: unknown country" if i < 6 else "code")
    tally.add("more.csv", "failed", "api: server error 500")
    tally.add("more.csv", "failed", "api: server error 500")
    tally.warn("customers.csv", "state: ignored", 4)
    settings: dict[str, object] = {
        "batches": 3,
        "retries": 2,
        "duration_s": 5.0,
        "aborted": None,
        "exit_code": 1,
        "failures_path": "customers.failures.csv",
    }
    settings.update(overrides)
    return Summary.from_tally(tally, **settings)  # type: ignore[arg-type]


def test_summary_json_has_exactly_the_stable_keys(tmp_path: Path) -> None:
    summary = make_summary()
    path = tmp_path / "summary.json"
    write_summary_json(summary, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == STABLE_KEYS
    assert data["rows"] == 250
    assert data["accepted"] + data["rejected"] + data["failed"] + data["skipped"] == data["rows"]
    assert (data["batches"], data["retries"], data["warnings"]) == (3, 2, 4)
    assert data["records_per_second"] == 50.0
    assert data["aborted"] is None and data["exit_code"] == 1 and data["dry_run"] is False
    assert list(data["errors"].items()) == [
        ("country: unknown country", 6),
        ("api: server error 500", 2),
        ("code", 2),
    ]
    assert data["files"]["more.csv"] == {
        "rows": 2,
        "accepted": 0,
        "rejected": 0,
        "failed": 2,
        "skipped": 0,
        "warnings": 0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_summary_json_replaces_an_old_file_and_reports_bad_paths(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("old", encoding="utf-8")
    write_summary_json(make_summary(aborted="API unavailable", exit_code=3), path)
    assert json.loads(path.read_text(encoding="utf-8"))["aborted"] == "API unavailable"
    with pytest.raises(ReportError, match="cannot write"):
        write_summary_json(make_summary(), tmp_path / "missing" / "summary.json")


def test_summary_check_catches_counts_that_do_not_add_up() -> None:
    summary = make_summary()
    summary.accepted -= 1
    with pytest.raises(RuntimeError, match="does not add up"):
        summary.check()


def test_summary_with_zero_duration_has_zero_rate() -> None:
    assert make_summary(duration_s=0.0).to_json()["records_per_second"] == 0.0


def render(renderable: object) -> str:
    console = Console(record=True, width=120)
    console.print(renderable)
    return console.export_text()


def test_summary_table_shows_figures_files_and_top_errors() -> None:
    text = render(summary_table(make_summary(), top_errors=2))
    for label, value in (
        ("rows read", "250"),
        ("accepted", "240"),
        ("rejected", "8"),
        ("failed", "2"),
        ("warnings", "4"),
        ("retries", "2"),
        ("records per second", "50.0"),
    ):
        line = next(line for line in text.splitlines() if label in line)
        assert value in line, line
    assert "more.csv" in text and "customers.csv" in text
    assert "country: unknown country" in text and "api: server error 500" in text
    assert "1 more reason(s)" in text
    assert "code" not in text.replace("exit code", "")
    assert "customers.failures.csv" in text


def test_summary_table_for_one_file_has_no_per_file_table() -> None:
    tally = Tally()
    tally.add("only.csv", "accepted")
    summary = Summary.from_tally(tally, batches=1, retries=0, duration_s=0.5, aborted=None, exit_code=0)
    text = render(summary_table(summary))
    assert "per file" not in text and "only.csv" not in text
    assert "top error reasons" not in text


def test_summary_table_shows_abort_reason_and_dry_run() -> None:
    text = render(summary_table(make_summary(aborted="API key refused (401)", dry_run=True)))
    assert "API key refused (401)" in text
    assert "dry run" in text


def test_summary_line() -> None:
    assert summary_line(make_summary()) == (
        "biteral-import: 250 rows: 240 accepted, 8 rejected, 2 failed, 0 skipped (exit 1)"
    )
    assert summary_line(make_summary(aborted="API unavailable", exit_code=3)).endswith(
        "(exit 3, aborted: API unavailable)"
    )


# --- issue 12 §3: the failure report's round trip gives back the same payload -------------------

ROUND_TRIP_HEADERS = ["code", "country", "city", "Phone", "Notes"]


def _write_input(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(ROUND_TRIP_HEADERS)
        writer.writerows(rows)


def _dry_run(in_dir: Path, source: Path, name: str) -> tuple[list[dict[str, object]], list[str]]:
    """Payloads a dry run of ``source`` would send, and the errors of the rows it rejects."""
    from typer.testing import CliRunner

    from biteral_cli.cli import app

    payloads = in_dir / f"{name}.payloads.jsonl"
    failures = in_dir / f"{name}.failures.jsonl"
    result = CliRunner().invoke(
        # Phones and notes are personal data, kept home by default: include them to see them round-trip.
        app,
        [
            str(source),
            "--dry-run",
            "--output",
            str(payloads),
            "--failures",
            str(failures),
            "--quiet",
            "--personal-data",
            "include",
        ],
    )
    assert result.exit_code in (0, 1), result.output
    sent = [json.loads(line) for line in payloads.read_text(encoding="utf-8").splitlines()]
    rejected = (
        [json.loads(line)["_error"] for line in failures.read_text(encoding="utf-8").splitlines()]
        if failures.exists()
        else []
    )
    return sent, rejected


def _report_of(source: Path, report_path: Path) -> None:
    """Write every row of ``source`` to a CSV failure report, as a run whose rows all failed would."""
    from biteral_cli.reader import ReadOptions, open_source

    with open_source(str(source), ReadOptions()) as opened, RowReport(report_path, columns=opened.headers) as report:
        for row in opened.rows():
            report.add(row, stage="api", field="", error="gave up after 6 attempts: API answered 503")


_PREFIXES = st.sampled_from(["", "", "'", "''", "=", "+", "-", "@", "'-", "'+", "'0", "\t", "-'"])
_TEXT = st.text(alphabet="abcñé0123456789 +-=@'.,;", max_size=10)
_CELL = st.builds(lambda prefix, text: prefix + text, _PREFIXES, _TEXT)


@pytest.mark.slow
@given(rows=st.lists(st.lists(_CELL, min_size=5, max_size=5), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_any_row_through_a_failure_report_and_back_gives_the_same_payload(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    assume(any(any(row) for row in rows))  # a file of empty lines has no row to report
    in_dir = tmp_path_factory.mktemp("round")
    original = in_dir / "customers.csv"
    _write_input(original, rows)
    report = in_dir / "customers.failures.csv"
    _report_of(original, report)
    assert _dry_run(in_dir, report, "again") == _dry_run(in_dir, original, "first")


def test_guarded_cells_of_every_column_come_back_without_the_guard(in_tmp: Path) -> None:
    # The cells the issue names: a city, a metadata number and a phone, all formula-like. The city
    # is one no gazetteer knows, so it is sent as written and only the guard can change it.
    original = in_tmp / "customers.csv"
    _write_input(original, [["-C1", "ES", "-Villa Inventada", "+34600000000", "-25.50"]])
    report = in_tmp / "customers.failures.csv"
    _report_of(original, report)
    assert "'-Villa Inventada" in report.read_text(encoding="utf-8-sig")  # the guard is in the report
    sent, _ = _dry_run(in_tmp, report, "again")
    assert sent == [
        {
            "code": "-C1",
            "country": "ES",
            "city": "-Villa Inventada",
            "metadata": {"Phone": "+34600000000", "Notes": "-25.50"},
        }
    ]


def test_a_real_leading_apostrophe_survives_the_round_trip(in_tmp: Path) -> None:
    original = in_tmp / "customers.csv"
    _write_input(original, [["C1", "ES", "'t Hoff", "", "'quoted'"]])
    report = in_tmp / "customers.failures.csv"
    _report_of(original, report)
    assert "''t Hoff" in report.read_text(encoding="utf-8-sig")  # doubled: the guard is an escape
    sent, _ = _dry_run(in_tmp, report, "again")
    assert sent[0]["city"] == "'t Hoff"
    assert sent[0]["metadata"] == {"Notes": "'quoted'"}


def test_a_guarded_header_comes_back_as_written(in_tmp: Path) -> None:
    original = in_tmp / "customers.csv"
    original.write_text("code,-score\nC1,5\n", encoding="utf-8")
    report = in_tmp / "customers.failures.csv"
    _report_of(original, report)
    sent, _ = _dry_run(in_tmp, report, "again")
    assert sent == [{"code": "C1", "metadata": {"-score": "5"}}]


@pytest.mark.parametrize("value", ["-5", "'x", "''", "'", "=A1", "plain"])
def test_unguard_undoes_neutralize(value: str) -> None:
    from biteral_cli.report import unguard

    assert unguard(neutralize(value)) == value


# --- issue 12 §4 and §5: reports and summaries a script can rely on ------------------------------


def _cli(*args: str, input: bytes | None = None) -> Any:
    from typer.testing import CliRunner

    from biteral_cli.cli import app

    return CliRunner().invoke(app, list(args), input=input)


def test_a_report_left_by_an_earlier_run_is_moved_to_old_and_the_summary_says_so(in_tmp: Path) -> None:
    Path("customers.csv").write_text("code,country\nC1,ES\n", encoding="utf-8")
    Path("customers.failures.csv").write_text("code,_error\nX,yesterday\n", encoding="utf-8")
    Path("w.csv").write_text("code,_error\nY,yesterday\n", encoding="utf-8")
    result = _cli("customers.csv", "--dry-run", "--warnings", "w.csv", "--summary-json", "s.json")
    assert result.exit_code == 0, result.output
    assert not Path("customers.failures.csv").exists() and not Path("w.csv").exists()  # a clean run: no report
    assert "yesterday" in Path("customers.failures.csv.old").read_text(encoding="utf-8")
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["old_reports"] == {"customers.failures.csv": "customers.failures.csv.old", "w.csv": "w.csv.old"}
    assert "customers.failures.csv.old" in result.output


def test_report_formats_follow_their_extension_unless_the_format_is_given(in_tmp: Path) -> None:
    Path("in.csv").write_text("code,country\nC1,Spian\n,ES\n", encoding="utf-8")  # one warning, one rejected
    result = _cli("in.csv", "--dry-run", "--failures", "x.jsonl", "--warnings", "y.csv")
    assert result.exit_code == 1, result.output
    assert json.loads(Path("x.jsonl").read_text(encoding="utf-8"))["_stage"] == "validate"
    assert read_csv(Path("y.csv"))[0]["country"] == "Spian"
    result = _cli("in.csv", "--dry-run", "--failures", "x.jsonl", "--warnings", "y.csv", "--failures-format", "csv")
    assert read_csv(Path("x.jsonl"))[0]["_field"] == "code"  # told: CSV whatever the name
    result = _cli("in.csv", "--dry-run", "--failures", "x.txt", "--warnings", "y.jsonl", "--failures-format", "jsonl")
    assert json.loads(Path("y.jsonl").read_text(encoding="utf-8"))["country"] == "Spian"
    assert json.loads(Path("x.txt").read_text(encoding="utf-8"))["_field"] == "code"


def test_summary_json_is_written_when_the_run_ends_with_exit_2(in_tmp: Path) -> None:
    result = _cli("missing.csv", "--dry-run", "--summary-json", "s.json")
    assert result.exit_code == 2
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == 2 and summary["rows"] == 0
    assert "missing.csv: no such file" in summary["error"] and summary["aborted"] == summary["error"]
    result = _cli("missing.csv", "--dry-run", "--json")
    assert json.loads(result.stdout)["exit_code"] == 2


def test_summary_json_is_written_when_the_key_is_refused_with_exit_3(in_tmp: Path, sandbox: Any) -> None:
    import os

    Path("c.csv").write_text("code\nC1\n", encoding="utf-8")
    os.environ["BITERAL_API_KEY"] = "not-the-key"
    try:
        result = _cli("c.csv", "--api-url", sandbox.url, "--summary-json", "s.json")
    finally:
        del os.environ["BITERAL_API_KEY"]
    assert result.exit_code == 3, result.output
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == 3 and summary["error"] and summary["aborted"]


@pytest.mark.slow
def test_records_per_second_counts_only_rows_processed_in_this_run(
    in_tmp: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biteral_cli import importer
    from biteral_cli.reader import _arrow

    # Blocks of ~20 rows: the first run sends the first block before the bad row stops it (the
    # rows of the block that holds it are reported not sent, and sent by the resumed run).
    monkeypatch.setattr(_arrow, "BLOCK_BYTES", 200)
    long_code = "x" * 300  # rejected before sending: with --max-errors 0 it stops the first run
    lines = [f"R{i:03d},ES" for i in range(1, 41)]
    lines[29] = f"{long_code},ES"
    Path("c.csv").write_text("code,country\n" + "\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("BITERAL_API_KEY", sandbox.api_key)
    base = ("c.csv", "--api-url", sandbox.url, "--batch-size", "5", "--concurrency", "1")
    first = _cli(*base, "--max-errors", "0")
    assert first.exit_code == 3, first.output
    ticks = iter([100.0, 102.0])  # the resumed run lasts exactly 2 s on the injected clock
    monkeypatch.setattr(importer, "_clock", lambda: next(ticks))
    second = _cli(*base, "--resume", "--summary-json", "s.json")
    assert second.exit_code == 1, second.output
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["rows"] == 40 and summary["resumed"] > 0
    assert summary["records_per_second"] == (40 - summary["resumed"]) / 2


def test_summary_table_shows_top_warning_reasons_and_where_to_read_them_all() -> None:
    tally = Tally()
    tally.add("a.csv", "accepted")
    tally.warn("a.csv", "country: not a known country", 3)
    tally.warn("a.csv", "gender: M is ambiguous", 1)
    common = {"batches": 1, "retries": 0, "duration_s": 1.0, "aborted": None, "exit_code": 0}
    text = render(summary_table(Summary.from_tally(tally, **common)))  # type: ignore[arg-type]
    assert "top warning reasons" in text and "country: not a known country" in text
    assert "--warnings PATH" in text
    text = render(summary_table(Summary.from_tally(tally, warnings_path="w.csv", **common)))  # type: ignore[arg-type]
    assert "every row: w.csv" in text


def test_summary_json_names_how_each_file_was_read_and_never_sends_mojibake(in_tmp: Path) -> None:
    data = "code;country;city\nA1;España;Málaga\n".encode("cp1252") + "A2;España;Málaga\n".encode()
    Path("mixed.csv").write_bytes(data)
    result = _cli("mixed.csv", "--dry-run", "--output", "out.jsonl", "--summary-json", "s.json")
    assert result.exit_code == 0, result.output
    sent = Path("out.jsonl").read_text(encoding="utf-8")
    assert "Ã" not in sent and sent.count('"city":"Málaga"') == 2
    info = json.loads(Path("s.json").read_text(encoding="utf-8"))["files"]["mixed.csv"]
    assert (info["format"], info["encoding"], info["delimiter"], info["sheet"]) == ("csv", "utf-8+cp1252", ";", None)
    assert "mixed.csv: read as csv, encoding utf-8+cp1252, delimiter ';'" in result.output


def test_rows_from_stdin_show_stdin_as_their_source(in_tmp: Path) -> None:
    result = _cli("-", "--dry-run", "--format", "csv", "--summary-json", "s.json", input=b"code,country\n,ES\n")
    assert result.exit_code == 1, result.output
    assert read_csv(Path("stdin.failures.csv"))[0]["_source"] == "<stdin>"
    assert list(json.loads(Path("s.json").read_text(encoding="utf-8"))["files"]) == ["<stdin>"]


# --- issue 12 §6: progress bar, --verbose lines, NO_COLOR, Excel warnings ------------------------


def _bar_lines(no_color: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    import io

    from biteral_cli.progress import Progress
    from biteral_cli.report import FileCounts

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system="truecolor")
    progress = Progress.start(console, enabled=True, total=4_000_000)
    assert progress.mode == "bar"  # NO_COLOR leaves the bar on a terminal, uncoloured
    tally = Tally()
    tally.files["big.csv"] = FileCounts(rows=3_000_000, accepted=1_000_000, rejected=1_000_000, failed=1_000_000)
    progress.update(tally, 1_234_567, sent=9_999_999)
    progress.finish()
    return buffer.getvalue()


def test_the_progress_bar_fits_80_columns_with_million_row_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", _bar_lines(False, monkeypatch))
    lines = [line for line in shown.replace("\r", "\n").split("\n") if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert "…" not in lines[-1]  # nothing cut off to make it fit
    assert "ok 1000000 rej 1000000 fail 1000000 retry 1234567" in lines[-1]


def test_no_color_turns_off_colours_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    colour = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7])[;m]")
    assert colour.search(_bar_lines(False, monkeypatch)) is not None
    assert colour.search(_bar_lines(True, monkeypatch)) is None


def test_verbose_lines_carry_iso_timestamps_and_are_not_wrapped(in_tmp: Path, sandbox: Any) -> None:
    import re

    Path("c.csv").write_text("code,city\n" + "".join(f"C{i},{'Valladolid ' * 12}\n" for i in range(3)), "utf-8")
    import os

    os.environ["BITERAL_API_KEY"] = sandbox.api_key
    try:
        result = _cli("c.csv", "--api-url", sandbox.url, "-v", "--batch-size", "1")
    finally:
        del os.environ["BITERAL_API_KEY"]
    assert result.exit_code == 0, result.output
    logged = [line for line in result.stderr.splitlines() if " DEBUG " in line]
    assert len(logged) >= 4  # GET /status and one POST per customer
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d DEBUG ")
    assert all(iso.match(line) for line in logged), logged
    assert any("POST /customers -> 200" in line for line in logged)


def test_a_long_excel_number_is_a_warning_in_the_summary_and_the_warning_report(in_tmp: Path) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["Customer ID", "Account"])
    workbook.active.append(["C1", 12345678901234567890])
    workbook.save("ids.xlsx")
    result = _cli("ids.xlsx", "--dry-run", "--warnings", "w.csv", "--output", "out.jsonl", "--summary-json", "s.json")
    assert result.exit_code == 0, result.output
    assert "e+19" not in Path("out.jsonl").read_text(encoding="utf-8")
    warned = read_csv(Path("w.csv"))
    assert warned[0]["_field"] == "Account" and "cell 'B2'" in warned[0]["_error"]
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["warnings"] == 1 and summary["files"]["ids.xlsx"]["sheet"] == "Sheet"


def test_summary_json_is_written_when_the_config_file_is_refused(in_tmp: Path) -> None:
    Path("c.csv").write_text("code\nC1\n", encoding="utf-8")
    Path("biteral-import.toml").write_text("concurrency = [1]\n", encoding="utf-8")
    result = _cli("c.csv", "--dry-run", "--summary-json", "s.json")
    assert result.exit_code == 2
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == 2 and "biteral-import.toml: concurrency" in summary["error"]


def test_summary_json_is_written_when_an_option_value_is_refused(in_tmp: Path) -> None:
    Path("c.csv").write_text("code\nC1\n", encoding="utf-8")
    result = _cli("c.csv", "--dry-run", "--concurrency", "many", "--summary-json", "s.json")
    assert result.exit_code == 2
    summary = json.loads(Path("s.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == 2 and "--concurrency" in summary["error"]


# -- found by tools/mutation.py: each test below failed on a mutant that had survived -------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_redacted_reports_mask_personal_cells_in_columns_and_extra_and_keep_the_rest(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"failures.{fmt}"
    personal = {"Email", "Phone"}
    with RowReport(path, fmt=fmt, columns=["code", "Email", "Plan"], redact=personal.__contains__) as report:  # type: ignore[arg-type]
        cells = {"code": "C1", "Email": "ana@example.com", "Plan": "pro", "Phone": "+34600000000"}
        report.add(SourceRow("in.csv", 2, cells), stage="validate", field="country", error="bad")
        report.add(
            SourceRow("in.csv", 3, {"code": "C2", "Email": "", "Plan": "", "Phone": ""}),
            stage="api",
            field="",
            error="x",
        )
    if fmt == "csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        extras = [json.loads(r.pop("_extra")) for r in rows]
        assert [(r["code"], r["Email"], r["Plan"]) for r in rows] == [("C1", "[redacted]", "pro"), ("C2", "", "")]
        assert extras == [{"Phone": "[redacted]"}, {"Phone": ""}]
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [{k: r[k] for k in ("code", "Email", "Plan", "Phone")} for r in rows] == [
            {"code": "C1", "Email": "[redacted]", "Plan": "pro", "Phone": "[redacted]"},
            {"code": "C2", "Email": "", "Plan": "", "Phone": ""},
        ]
    assert os.stat(path).st_mode & 0o777 == 0o600  # row data: its owner only


def test_the_summary_of_a_run_that_ended_before_any_row_counts_nothing() -> None:
    figures = Summary.for_error("--shard must be K/N", 2).to_json()
    counts = {key: figures[key] for key in ("rows", "accepted", "rejected", "failed", "skipped", "batches", "retries")}
    assert counts == dict.fromkeys(counts, 0)
    assert (figures["duration_s"], figures["settled_rate"], figures["exit_code"]) == (0.0, None, 2)
    assert figures["aborted"] == figures["error"] == "--shard must be K/N"


def test_the_summary_carries_the_settled_rate() -> None:
    summary = Summary.from_tally(
        Tally(), batches=3, retries=1, duration_s=2.0, aborted=None, exit_code=0, settled_rate=4.5
    )
    assert summary.to_json()["settled_rate"] == 4.5


def test_warnings_add_up_per_file_and_per_reason_and_registering_again_keeps_the_counts() -> None:
    tally = Tally()
    tally.register("a.csv")
    tally.add("a.csv", "accepted")
    tally.warn("a.csv", "country: ambiguous")
    tally.warn("a.csv", "country: ambiguous", 2)
    tally.warn("b.csv", "gender: M undecided")
    tally.register("a.csv")  # the same input named twice must not reset what it counted
    assert (tally.files["a.csv"].rows, tally.files["a.csv"].warnings, tally.files["b.csv"].warnings) == (1, 3, 1)
    assert dict(tally.warning_reasons) == {"country: ambiguous": 3, "gender: M undecided": 1}
    assert tally.totals.warnings == 4


def test_a_cell_missing_from_a_row_is_an_empty_report_cell(tmp_path: Path) -> None:
    # JSON Lines rows need not share keys; "null" in the report would be sent back as text.
    path = tmp_path / "failures.csv"
    with RowReport(path, columns=["code", "city"]) as report:
        report.add(SourceRow("in.jsonl", 1, {"code": "C1"}), stage="validate", field="code", error="x")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["code"], row["city"]) == ("C1", "")


def test_the_quiet_line_of_a_dry_run_says_so() -> None:
    tally = Tally()
    tally.add("in.csv", "accepted")
    summary = Summary.from_tally(tally, batches=0, retries=0, duration_s=0.1, aborted=None, exit_code=0, dry_run=True)
    assert (
        summary_line(summary) == "biteral-import: 1 rows: 1 accepted, 0 rejected, 0 failed, 0 skipped (dry run, exit 0)"
    )
