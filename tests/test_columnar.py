"""Files longer than one chunk (8,192 rows): rows keep their numbers, order and outcome across chunks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biteral_cli.chunk import CHUNK_ROWS
from biteral_cli.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_tmp")]

ROWS = CHUNK_ROWS + 900
#: Data lines (the header is line 1) whose code is empty: rejected; the second one is in chunk 2.
BAD_LINES = (CHUNK_ROWS - 100, CHUNK_ROWS + 500)


def _export(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "country", "city", "birth date", "plan"])
        for line in range(2, ROWS + 2):
            code = "" if line in BAD_LINES else f"C{line:06d}"
            # Every 1000th row repeats an earlier code: a warning, sent anyway.
            if line % 1000 == 0:
                code = "C000002"
            writer.writerow([code, "Spain" if line % 2 else "ES", "Madrid", f"{1950 + line % 50}-05-17", "gold"])
    return path


def _run(path: Path, *extra: str) -> tuple[int, dict, list[dict], list[dict]]:
    result = CliRunner().invoke(
        app,
        [
            str(path),
            "--dry-run",
            "--quiet",
            "--output",
            "out.jsonl",
            "--failures",
            "failures.csv",
            "--warnings",
            "warnings.csv",
            "--summary-json",
            "summary.json",
            *extra,
        ],
    )
    summary = json.loads(Path("summary.json").read_text())
    lines = [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]
    with open("failures.csv", encoding="utf-8", newline="") as fh:
        failures = list(csv.DictReader(fh))
    return result.exit_code, summary, lines, failures


def test_rows_of_every_chunk_are_sent_in_order_and_rejected_rows_keep_their_line(in_tmp: Path) -> None:
    code, summary, lines, failures = _run(_export(in_tmp / "big.csv"))
    assert code == 1  # some rows rejected
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (ROWS, ROWS - 2, 2)
    assert [row["_row"] for row in failures] == [str(n) for n in BAD_LINES]
    assert len(lines) == ROWS - 2
    assert (lines[0]["code"], lines[0]["country"], lines[0]["yearBorn"]) == ("C000002", "ES", 1952)
    assert lines[0]["metadata"] == {"plan": "gold"}
    # The payloads come out in file order across the chunk boundary.
    expected = [
        "C000002" if line % 1000 == 0 else f"C{line:06d}" for line in range(2, ROWS + 2) if line not in BAD_LINES
    ]
    assert [line["code"] for line in lines] == expected
    repeats = Path("warnings.csv").read_text(encoding="utf-8").count("appears earlier in the input")
    assert repeats == ROWS // 1000
    # A repeated code splits a batch only when the earlier one is in it: these are 1,000 rows apart.
    assert summary["batches"] == -(-(ROWS - 2) // 100)


def test_max_errors_stops_at_the_same_row_in_a_later_chunk(in_tmp: Path) -> None:
    code, summary, lines, failures = _run(_export(in_tmp / "big.csv"), "--max-errors", "1")
    assert code != 0 and summary["aborted"]
    # The second rejected row is line BAD_LINES[1]: the rows after it are not read into the counts.
    assert summary["rows"] == BAD_LINES[1] - 1
    assert summary["rejected"] == 2 and summary["accepted"] == BAD_LINES[1] - 3
    assert len(lines) == BAD_LINES[1] - 3
    assert [row["_row"] for row in failures] == [str(n) for n in BAD_LINES]


def test_a_max_errors_percentage_stops_at_the_hundredth_row_within_a_run_of_clean_rows(in_tmp: Path) -> None:
    path = in_tmp / "early.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "country", "plan"])
        for line in range(2, 302):
            # 5 rejected rows first; the row after the 100th has a warning (a row prepared on its own).
            writer.writerow(["" if line <= 6 else f"C{line:06d}", "Atlantis" if line == 102 else "ES", "gold"])
    code, summary, lines, failures = _run(path, "--max-errors", "1%")
    assert [row["_row"] for row in failures] == ["2", "3", "4", "5", "6"]
    # 5% of the first 100 rows were rejected: the run stops right after the 100th row, not later.
    assert code != 0 and summary["aborted"]
    assert (summary["rows"], summary["rejected"], summary["accepted"]) == (100, 5, 95)
    assert len(lines) == 95 and lines[-1]["code"] == "C000101"
