"""Former, newer and FIPS 10-4 state codes (issue 13 §1): what the client sends and says."""

from __future__ import annotations

from typing import Any

import pytest

from biteral_cli.locations import resolve_state
from biteral_cli.normalize import NormalizeOptions, Normalizer
from biteral_cli.records import Extracted, Prepared, SourceRow


def prepare(fields: dict[str, Any]) -> Prepared:
    """Normalize one row the way an import does."""
    row = SourceRow(source="in.csv", row=2, cells={}, error=None)
    extracted = Extracted(fields={"code": "C1", **fields}, metadata_json=None, metadata_extra={})
    return Normalizer(NormalizeOptions(this_year=2026)).prepare(row, extracted)


# The state codes of the official SDK's example customers, which the real API accepts.
@pytest.mark.parametrize(
    ("country", "state"),
    [("LU", "LU-L"), ("GR", "GR-A2"), ("MK", "MK-85"), ("GP", "GP-01"), ("JE", "JE-03"), ("NO", "NO-55"),
     ("NO", "NO-40")],
)  # fmt: skip
def test_sdk_example_state_codes_are_sent_without_an_unknown_warning(country: str, state: str) -> None:
    result = prepare({"country": country, "state": state})
    assert result.payload == {"code": "C1", "country": country, "state": state}
    assert result.warnings == []


def test_newer_norwegian_counties_are_known_by_code_and_name() -> None:
    assert resolve_state("NO-55", "NO").value == "NO-55"
    assert resolve_state("Troms", "NO").value == "NO-55"
    assert resolve_state("Telemark", "NO").value == "NO-40"


@pytest.mark.parametrize(
    ("former", "country", "current"),
    [("AU-NS", "AU", "AU-NSW"), ("MK-02", "MK", "MK-802"), ("AU-QL", "AU", "AU-QLD")],
)
def test_former_code_with_one_successor_is_sent_as_the_current_code(former: str, country: str, current: str) -> None:
    result = prepare({"country": country, "state": former})
    assert result.payload == {"code": "C1", "country": country, "state": current}
    assert result.warnings == []


def test_former_code_with_several_successors_is_sent_as_written_without_a_warning() -> None:
    assert resolve_state("NO-01", "NO").status == "former"  # Østfold: merged, then split again
    result = prepare({"country": "NO", "state": "NO-01"})
    assert result.payload == {"code": "C1", "country": "NO", "state": "NO-01"}
    assert result.warnings == []


def test_former_code_of_another_country_is_still_a_warning() -> None:
    result = prepare({"country": "ES", "state": "LU-L"})
    assert result.payload == {"code": "C1", "country": "ES", "state": "LU-L"}
    assert [w.field for w in result.warnings] == ["state"]


def test_a_code_nobody_ever_assigned_is_still_unknown() -> None:
    assert resolve_state("NO-99", "NO").status == "unknown"
