"""The locations review of `map` and `--dry-run`, and --locations-report (issue 13 §4)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app

ROWS = (
    [("Spain", "Barcelona", "Sabadell")] * 5
    + [("US", "", "Springfield")] * 3
    + [("ES", "", "Girona")] * 2
    + [("Atlantis", "", "Nowhere")]
)


@pytest.fixture
def export(in_tmp: Path) -> Path:
    path = in_tmp / "shop.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "country", "state", "city"])
        for i, row in enumerate(ROWS):
            writer.writerow([f"C{i}", *row])
    return path


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env={"BITERAL_API_KEY": "", "COLUMNS": "200"})


def read_review(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_dry_run_writes_each_distinct_place_worst_first(export: Path) -> None:
    result = invoke([str(export), "--dry-run", "--locations-report", "places.csv"])
    assert result.exit_code == 0, result.output
    review = read_review(Path("places.csv"))
    by_value = {(r["field"], r["written"]): r for r in review}
    # Problems first, most rows first: the ambiguous Springfield (3 rows) before unknown Atlantis (1).
    problems = [(r["field"], r["written"], r["rows"]) for r in review if r["problem"] and "filled" not in r["problem"]]
    assert problems == [("city", "Springfield", "3"), ("country", "Atlantis", "1")]
    assert review[0]["written"] == "Springfield" and "add a state" in review[0]["problem"]
    assert by_value[("country", "Spain")] == {
        "field": "country",
        "written": "Spain",
        "where": "",
        "sent": "ES",
        "problem": "",
        "rows": "5",
    }
    assert by_value[("state", "Barcelona")]["sent"] == "ES-B"
    assert by_value[("city", "Sabadell")]["where"] == "ES ES-B"
    girona_state = by_value[("state", "")]
    assert (girona_state["sent"], girona_state["rows"]) == ("ES-GI", "2")
    assert girona_state["problem"].startswith("state filled in as ES-GI")
    assert sum(int(r["rows"]) for r in review if r["field"] == "country") == len(ROWS)


def test_dry_run_prints_the_review_after_the_summary(export: Path) -> None:
    result = invoke([str(export), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Locations review" in result.output
    assert result.output.index("Springfield") < result.output.index("Sabadell")


def test_map_reviews_the_places_of_the_whole_file(export: Path) -> None:
    result = invoke(["map", str(export), "--samples", "2", "--locations-report", "map-places.csv"])
    assert result.exit_code == 0, result.output
    assert "Locations review" in result.output
    review = read_review(Path("map-places.csv"))
    assert sum(int(r["rows"]) for r in review if r["field"] == "city") == len(ROWS)


def test_an_unwritable_locations_report_is_refused_before_reading(export: Path) -> None:
    result = invoke([str(export), "--dry-run", "--locations-report", "no/such/dir/places.csv"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
