"""Failure/warning reports, the tally, and the summary as JSON, table and one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
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
