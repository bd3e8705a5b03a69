"""Cities (issue 13 §3): real names in any language and case, state inference, ambiguity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from biteral_cli.cities import DOMINANCE, resolve_city
from biteral_cli.normalize import NormalizeOptions, Normalizer
from biteral_cli.records import Extracted, Prepared, SourceRow


def prepare(fields: dict[str, Any], **options: Any) -> Prepared:
    """Normalize one row the way an import does."""
    row = SourceRow(source="in.csv", row=2, cells={}, error=None)
    extracted = Extracted(fields={"code": "C1", **fields}, metadata_json=None, metadata_extra={})
    return Normalizer(NormalizeOptions(this_year=2026, **options)).prepare(row, extracted)


def messages(result: Prepared) -> list[str]:
    return [f"{i.field}: {i.message}" for i in result.warnings + result.errors]


@pytest.mark.parametrize(
    ("city", "country", "sent"),
    [("Nueva York", "US", "New York City"), ("LONDRES", "GB", "London"), ("Múnich", "DE", "Munich"),
     ("MADRID", "ES", "Madrid"), ("sao paulo", "BR", "São Paulo"), ("  barcelona ", "ES", "Barcelona"),
     ("Londra", "GB", "London"), ("Мюнхен", "DE", "Munich")],
)  # fmt: skip
def test_a_city_in_any_language_or_case_is_sent_as_the_gazetteer_name(city: str, country: str, sent: str) -> None:
    result = prepare({"country": country, "state": "", "city": city})
    assert result.payload is not None
    assert result.payload["city"] == sent
    assert result.errors == []


def test_missing_state_is_filled_from_a_unique_or_dominant_city_with_a_note() -> None:
    result = prepare({"country": "ES", "city": "Girona"})
    assert result.payload == {"code": "C1", "country": "ES", "state": "ES-GI", "city": "Girona"}
    assert messages(result) == [
        "state: state filled in as ES-GI (Girona) from city 'Girona' (--no-infer-state turns this off)"
    ]


def test_spain_gets_the_province_and_a_state_column_left_empty_is_filled_too() -> None:
    result = prepare({"country": "ES", "state": "  ", "city": "Sabadell"})
    assert result.payload is not None and result.payload["state"] == "ES-B"  # the province, not ES-CT


def test_no_infer_state_leaves_the_state_out() -> None:
    result = prepare({"country": "ES", "city": "Girona"}, infer_state=False)
    assert result.payload == {"code": "C1", "country": "ES", "city": "Girona"}
    assert result.warnings == []


def test_dominant_namesake_wins_by_the_documented_population_rule() -> None:
    # London, England is far more than DOMINANCE times any other London in GB.
    res = resolve_city("London", "GB")
    assert (res.value, res.status) == ("London", "name")
    assert DOMINANCE == 10


def test_ambiguous_city_without_a_state_is_sent_as_written_with_a_warning() -> None:
    result = prepare({"country": "US", "city": "Springfield"})
    assert result.payload == {"code": "C1", "country": "US", "city": "Springfield"}
    (message,) = messages(result)
    assert message.startswith("city: ambiguous city 'Springfield' in country US")
    assert "US-IL (Illinois)" in message
    assert message.endswith("; add a state; sent as written")


def test_with_a_state_the_city_of_that_state_is_taken() -> None:
    result = prepare({"country": "US", "state": "Illinois", "city": "springfield"})
    assert result.payload == {"code": "C1", "country": "US", "state": "US-IL", "city": "Springfield"}
    assert result.warnings == []


def test_a_city_in_a_province_of_the_given_community_agrees_with_it() -> None:
    result = prepare({"country": "ES", "state": "Cataluña", "city": "Sabadell"})
    assert result.payload == {"code": "C1", "country": "ES", "state": "ES-CT", "city": "Sabadell"}
    assert result.warnings == []


def test_a_city_that_contradicts_the_state_is_sent_as_written_with_a_warning() -> None:
    result = prepare({"country": "US", "state": "CA", "city": "Austin"})
    assert result.payload == {"code": "C1", "country": "US", "state": "US-CA", "city": "Austin"}
    (message,) = messages(result)
    assert message.startswith("city: city 'Austin' is not in state US-CA (California): it is in US-TX (Texas)")
    assert message.endswith("sent as written")


def test_a_misspelt_city_gets_a_suggestion_from_its_country() -> None:
    result = prepare({"country": "ES", "state": "B", "city": "Barcelonna"})
    assert result.payload is not None and result.payload["city"] == "Barcelonna"
    assert messages(result) == [
        "city: city 'Barcelonna' is not a known city of country ES (Spain); sent as written (did you mean 'Barcelona'?)"
    ]


def test_a_small_place_the_gazetteer_lacks_is_sent_without_a_warning() -> None:
    result = prepare({"country": "ES", "state": "ES-B", "city": "Xyzzyville"})
    assert result.payload is not None and result.payload["city"] == "Xyzzyville"
    assert result.warnings == []


def test_strict_rejects_an_ambiguous_city_but_never_for_a_filled_state() -> None:
    assert prepare({"country": "US", "city": "Springfield"}, strict=True).payload is None
    filled = prepare({"country": "ES", "city": "Girona"}, strict=True)
    assert filled.payload is not None and filled.payload["state"] == "ES-GI"


def test_without_a_country_a_city_is_only_trimmed() -> None:
    result = prepare({"city": "  nueva   york "})
    assert result.payload == {"code": "C1", "city": "nueva york"}
    assert result.warnings == []


def test_wikidata_city_is_kept() -> None:
    assert prepare({"country": "ES", "city": "Q11355"}).payload == {"code": "C1", "country": "ES", "city": "Q11355"}


@pytest.mark.parametrize(
    ("fips", "country", "iso"), [("36", "US", "US-NY"), ("56", "ES", "ES-CT"), ("29", "ES", "ES-M")]
)
def test_fips_10_4_state_codes_resolve_within_the_country(fips: str, country: str, iso: str) -> None:
    result = prepare({"country": country, "state": fips})
    assert result.payload == {"code": "C1", "country": country, "state": iso}
    assert result.warnings == []


def test_city_tables_are_built_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from biteral_cli import cities

    builds = []

    def tiny_build() -> Iterator[tuple[str, dict[str, Any]]]:
        builds.append(1)
        table = {"names": ["Girona"], "pops": [1], "states": ["ES-GI"], "keys": {"girona": (0,)}, "fuzzy": ["girona"]}
        yield "ES", table
        yield "ES.other", {"keys": {}}
        yield "_admin1", {}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cities, "_build", tiny_build)
    stale = tmp_path / "biteral-import" / "cities-0000000000000000"
    stale.mkdir(parents=True)
    cities._db.cache_clear()
    cities.resolve_city.cache_clear()
    try:
        assert cities.resolve_city("GIRONA", "ES").value == "Girona"
        cities._db.cache_clear()  # a new run: loads the files, builds nothing
        assert cities.resolve_city("girona ", "ES").state == "ES-GI"
        assert builds == [1]
        (built,) = (tmp_path / "biteral-import").glob("cities-*")
        assert sorted(p.name for p in built.iterdir()) == ["_done", "cities.sqlite"]
        assert not stale.exists()
    finally:
        cities._db.cache_clear()
        cities.resolve_city.cache_clear()
