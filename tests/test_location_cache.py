"""The location tables: built from cold into the cache, then loaded warm, with the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from biteral_cli import cities, locations

# Examples of the README's normalization table and Locations section, with what it says they become.
COUNTRIES = {"España": "ES", "Deutschland": "DE", "EE.UU.": "US", "724": "ES", "Q29": "ES", "Holland": "NL"}
STATES = {
    ("Gerona", "ES"): "ES-GI",
    ("AU-NS", "AU"): "AU-NSW",
    ("La Coruña", "ES"): "ES-C",
    ("Baleares", "ES"): "ES-PM",
}
CITIES = {
    ("Nueva York", "US"): ("New York City", "US-NY"),
    ("LONDRES", "GB"): ("London", None),
    ("Múnich", "DE"): ("Munich", "DE-BY"),
    ("Sabadell", "ES"): ("Sabadell", "ES-B"),
}


def _clear_memory() -> None:
    """Forget every table and answer held in memory, as a new process would start."""
    for module in (locations, cities):
        for value in vars(module).values():
            if hasattr(value, "cache_clear"):
                value.cache_clear()


def answers() -> list[Any]:
    return [
        *(locations.resolve_country(text) for text in COUNTRIES),
        *(locations.resolve_state(text, country) for text, country in STATES),
        *(cities.resolve_city(text, country) for text, country in CITIES),
        cities.fips_state("36", "US"),  # FIPS 10-4, from the cities' division table
    ]


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _clear_memory()
    yield tmp_path / "biteral-import"
    _clear_memory()  # later tests load the session's tables again


@pytest.mark.slow
def test_tables_built_from_cold_and_loaded_warm_give_identical_answers(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not empty_cache.exists()
    cold = answers()
    assert [r.value for r in cold[: len(COUNTRIES)]] == list(COUNTRIES.values())
    assert [r.value for r in cold[len(COUNTRIES) : len(COUNTRIES) + len(STATES)]] == list(STATES.values())
    *city_answers, fips = cold[len(COUNTRIES) + len(STATES) :]
    assert fips == "US-NY"
    for answer, (name, state) in zip(city_answers, CITIES.values(), strict=True):
        assert answer.value == name and (state is None or answer.state == state), answer
    built = sorted(p.name.split("-")[0] for p in empty_cache.iterdir())
    assert built == ["cities", "countries", "states"]
    assert (next(empty_cache.glob("cities-*")) / "_done").exists()

    _clear_memory()

    def no_building(*args: object) -> Any:
        raise AssertionError("a warm cache was built again")

    monkeypatch.setattr(locations, "_build_countries", no_building)
    monkeypatch.setattr(locations, "_build_states", no_building)
    monkeypatch.setattr(cities, "_build", no_building)
    warm = answers()
    assert warm == cold
