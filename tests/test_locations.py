"""Country and state resolution: what the importer sends for what users write."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biteral_cli.locations import (
    Resolution,
    country_name,
    fold_text,
    resolve_country,
    resolve_state,
    state_name,
)


@pytest.mark.parametrize(
    "text",
    ["Spain", "España", "Espagne", "Spanien", "ES", "ESP", "724", "Q29", "  spain ", "SPAIN", "espana", "es"],
)
def test_spain_in_every_common_spelling_is_es(text: str) -> None:
    assert resolve_country(text).value == "ES"


@pytest.mark.parametrize(
    ("text", "alpha2"),
    [
        ("USA", "US"),
        ("EE.UU.", "US"),
        ("EEUU", "US"),
        ("U.S.A.", "US"),
        ("United States of America", "US"),
        ("united  states", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("United Kingdom", "GB"),
        ("Holland", "NL"),
        ("Nederland", "NL"),
        ("Deutschland", "DE"),
        ("Allemagne", "DE"),
        ("040", "AT"),
        ("40", "AT"),  # a spreadsheet dropped the leading zero
        ("AUT", "AT"),
        ("Österreich", "AT"),
        ("Brasil", "BR"),
        ("México", "MX"),
        ("Mexico", "MX"),
        ("Perú", "PE"),
        ("Suisse", "CH"),
        ("Schweiz", "CH"),
        ("Côte d’Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("South Korea", "KR"),
        ("Republic of Korea", "KR"),
        ("Czech Republic", "CZ"),
        ("Turkey", "TR"),
        ("Türkiye", "TR"),
        ("St. Lucia", "LC"),
        ("The Gambia", "GM"),
        ("日本", "JP"),
        ("Q142", "FR"),
        ("q30", "US"),
    ],
)
def test_informal_native_and_coded_countries_resolve(text: str, alpha2: str) -> None:
    assert resolve_country(text).value == alpha2


def test_resolution_reports_how_the_country_was_recognised() -> None:
    assert resolve_country("ES").status == "code"
    assert resolve_country("Spain").status == "name"
    assert resolve_country("EE.UU.").status == "alias"
    assert resolve_country("Q29").status == "wikidata"
    assert resolve_country("   ") == Resolution(None, "empty")


@pytest.mark.parametrize(("text", "codes"), [("Congo", {"CG", "CD"}), ("Korea", {"KR", "KP"})])
def test_ambiguous_country_names_are_never_guessed(text: str, codes: set[str]) -> None:
    res = resolve_country(text)
    assert res.value is None
    assert res.status == "ambiguous"
    assert set(res.candidates) == codes


def test_precise_congo_names_resolve() -> None:
    assert resolve_country("Democratic Republic of the Congo").value == "CD"
    assert resolve_country("Republic of the Congo").value == "CG"
    assert resolve_country("RDC").value == "CD"


def test_misspelt_country_is_unknown_with_a_suggestion() -> None:
    res = resolve_country("Spian")
    assert res.value is None
    assert res.status == "unknown"
    assert res.suggestion == "ES (Spain)"
    assert resolve_country("Frnace").suggestion == "FR (France)"


def test_nonsense_country_has_no_suggestion() -> None:
    res = resolve_country("Atlantis")
    assert (res.value, res.status, res.suggestion) == (None, "unknown", None)


def test_unknown_wikidata_id_is_not_guessed() -> None:
    res = resolve_country("Q99999999")
    assert res.value is None
    assert res.status == "unknown"


def test_country_name_gives_the_common_english_name() -> None:
    assert country_name("ES") == "Spain"
    assert country_name("bo") == "Bolivia"
    assert country_name("XX") == "XX"


@pytest.mark.parametrize(
    "text",
    ["B", "b", "ES-B", "es-b", "ES B", "Barcelona", " barcelona ", "BARCELONA"],
)
def test_barcelona_as_code_or_name_within_spain(text: str) -> None:
    assert resolve_state(text, "ES").value == "ES-B"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Gerona", "ES-GI"),
        ("Girona", "ES-GI"),
        ("La Coruña", "ES-C"),
        ("A Coruña", "ES-C"),
        ("La Coruna", "ES-C"),
        ("Vizcaya", "ES-BI"),
        ("Bizkaia", "ES-BI"),
        ("Guipúzcoa", "ES-SS"),
        ("Lérida", "ES-L"),
        ("Orense", "ES-OR"),
        ("Álava", "ES-VI"),
        ("Araba", "ES-VI"),
        # A province beats the single-province community of the same name.
        ("Baleares", "ES-PM"),
        ("Illes Balears", "ES-PM"),
        ("Islas Baleares", "ES-PM"),
        ("Madrid", "ES-M"),
        ("Cantabria", "ES-S"),
        ("Comunidad de Madrid", "ES-MD"),
        ("Cataluña", "ES-CT"),
        ("Catalunya", "ES-CT"),
        ("País Vasco", "ES-PV"),
        ("Euskadi", "ES-PV"),
    ],
)
def test_spanish_historical_and_alternative_names(text: str, code: str) -> None:
    assert resolve_state(text, "ES").value == code


def test_us_states_by_code_and_name() -> None:
    assert resolve_state("CA", "US") == Resolution("US-CA", "code")
    assert resolve_state("California", "US").value == "US-CA"
    assert resolve_state("Georgia", "US").value == "US-GA"
    assert resolve_state("NY", "US").value == "US-NY"
    assert resolve_state("Washington DC", "US").value == "US-DC"


def test_the_same_code_means_a_different_state_in_another_country() -> None:
    assert resolve_state("CA", "ES").value == "ES-CA"  # Cádiz


def test_georgia_outside_the_us_is_a_warning_not_a_guess() -> None:
    for country in ("ES", "GE"):
        res = resolve_state("Georgia", country)
        assert res.value is None
        assert res.status == "wrong_country"
        assert res.candidates == ("US-GA",)


def test_state_of_another_country_is_wrong_country() -> None:
    assert resolve_state("Barcelona", "FR") == Resolution(None, "wrong_country", ("ES-B",))
    assert resolve_state("US-CA", "ES") == Resolution(None, "wrong_country", ("US-CA",))
    assert resolve_state("Texas", "MX").candidates == ("US-TX",)


def test_misspelt_state_suggests_within_the_country() -> None:
    res = resolve_state("Barcelnoa", "ES")
    assert res.status == "unknown"
    assert res.suggestion == "ES-B (Barcelona)"


def test_state_without_a_country() -> None:
    assert resolve_state("ES-B", None).value == "ES-B"
    granada = resolve_state("Granada", None)
    assert granada.status == "ambiguous"
    assert "ES-GR" in granada.candidates
    assert len(granada.candidates) > 1
    assert resolve_state("Narnia", None).status == "unknown"


def test_state_wikidata_ids_pass_through() -> None:
    assert resolve_state("q1492", "ES") == Resolution("Q1492", "wikidata")


def test_other_countries_subdivisions() -> None:
    assert resolve_state("Bayern", "DE").value == "DE-BY"
    assert resolve_state("Bavaria", "DE").value == "DE-BY"
    assert resolve_state("NRW", "DE").value == "DE-NW"
    assert resolve_state("Milano", "IT").value == "IT-MI"
    assert resolve_state("JAL", "MX").value == "MX-JAL"
    assert resolve_state("Ciudad de México", "MX").value == "MX-CMX"
    assert resolve_state("CDMX", "MX").value == "MX-CMX"
    assert resolve_state("Sao Paulo", "BR").value == "BR-SP"
    assert resolve_state("Lisboa", "PT").value == "PT-11"
    assert resolve_state("FR-75C", "FR").value == "FR-75C"
    assert resolve_state("Wales", "GB").value == "GB-WLS"


def test_state_name_for_messages() -> None:
    assert state_name("ES-GI") == "Girona"
    assert state_name("ES-C") == "A Coruña"
    assert state_name("XX-1") == "XX-1"


def test_fold_text_ignores_case_accents_and_punctuation() -> None:
    assert fold_text("  Côte  d’Ivoire ") == fold_text("COTE DIVOIRE") == "cote divoire"
    assert fold_text("EE.UU.") == "eeuu"
    assert fold_text("St. Lucia") == "saint lucia"


_any_text = st.text(max_size=40) | st.sampled_from(
    ["\u202eSpain", "España\u0000", "🇪🇸", "Q", "Q0", "ES-", "-", "'", "\ud800", "٧٢٤", "ＥＳ"]
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(_any_text)
def test_resolve_country_never_raises(text: str) -> None:
    res = resolve_country(text)
    assert res.status in {"code", "name", "alias", "wikidata", "ambiguous", "unknown", "empty"}
    assert (res.value is None) != (res.status in {"code", "name", "alias", "wikidata"})


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(_any_text, st.sampled_from(["ES", "US", "GE", "XX", "es", None]))
def test_resolve_state_never_raises(text: str, country: str | None) -> None:
    res = resolve_state(text, country)
    assert res.status in {
        "code",
        "name",
        "alias",
        "wikidata",
        "ambiguous",
        "unknown",
        "empty",
        "wrong_country",
        "former",
    }
    if res.value is not None and res.status != "wikidata":
        assert res.value.split("-")[0] == (country or res.value.split("-")[0]).upper()


@pytest.mark.slow
def test_tables_are_cached_per_machine_and_a_broken_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biteral_cli import locations

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    locations._countries.cache_clear()
    locations.resolve_country.cache_clear()
    try:
        assert locations.resolve_country("España").value == "ES"
        (cached,) = (tmp_path / "biteral-import").glob("countries-*.sqlite")
        cached.write_bytes(b"\x00not a database")
        (tmp_path / "biteral-import" / "countries-0000000000000000.marshal").write_bytes(b"old")
        locations._countries.cache_clear()
        locations.resolve_country.cache_clear()
        assert locations.resolve_country("Allemagne").value == "DE"
        assert [p.name for p in (tmp_path / "biteral-import").glob("countries-*")] == [cached.name]
    finally:
        locations._countries.cache_clear()
        locations.resolve_country.cache_clear()
