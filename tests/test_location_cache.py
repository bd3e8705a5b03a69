"""The location tables: built from cold into the cache, then loaded warm, with the same answers."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable, Iterator
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
    ("Мюнхен", "DE"): ("Munich", "DE-BY"),  # other scripts' names are looked up the same way
    ("ニューヨーク", "US"): ("New York City", "US-NY"),
}
# Answers besides a plain match: suggestions, ambiguity, contradiction, another country's state.
OTHER_ANSWERS: dict[str, Callable[[], Any]] = {
    "country suggestion": lambda: locations.resolve_country("Germny").suggestion,
    "state suggestion": lambda: locations.resolve_state("Gironna", "ES").suggestion,
    "state of another country": lambda: locations.resolve_state("Girona", "FR").candidates,
    "state of any country": lambda: locations.resolve_state("Nueva York", None).value,
    "state by code": lambda: locations.resolve_state("ES-GI", "ES").value,
    "state name": lambda: locations.state_name("ES-GI"),
    "country name": lambda: locations.country_name("DE"),
    "city suggestion": lambda: cities.resolve_city("Barcelonna", "ES").suggestion,
    "city of several states": lambda: cities.resolve_city("Springfield", "US").candidates[:3],
    "city within its state": lambda: cities.resolve_city("Springfield", "US", "US-IL").state,
    "city within a parent state": lambda: cities.resolve_city("Barcelona", "ES", "ES-CT").state,
    "city outside the given state": lambda: cities.resolve_city("Valencia", "ES", "ES-B").candidates,
    "city of a country without cities": lambda: cities.resolve_city("Madrid", "XX").status,
    "unknown FIPS code": lambda: cities.fips_state("99", "US"),
}
EXPECTED_OTHER = {
    "country suggestion": "DE (Germany)",
    "state suggestion": "ES-GI (Girona)",
    "state of another country": ("ES-GI",),
    "state of any country": "US-NY",
    "state by code": "ES-GI",
    "state name": "Girona",
    "country name": "Germany",
    "city suggestion": "Barcelona",
    "city of several states": ("US-MO", "US-MA", "US-IL"),
    "city within its state": "US-IL",
    "city within a parent state": "ES-B",
    "city outside the given state": ("ES-V",),
    "city of a country without cities": "unknown",
    "unknown FIPS code": None,
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
        {name: answer() for name, answer in OTHER_ANSWERS.items()},
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
    for older in (
        "countries-0000000000000000.marshal",
        "states-0000000000000000.marshal",
        "cities-0000000000000000/US.marshal",
    ):
        (empty_cache / older).parent.mkdir(parents=True, exist_ok=True)
        (empty_cache / older).write_bytes(b"tables of an older version and layout")
    cold = answers()
    assert [r.value for r in cold[: len(COUNTRIES)]] == list(COUNTRIES.values())
    assert [r.value for r in cold[len(COUNTRIES) : len(COUNTRIES) + len(STATES)]] == list(STATES.values())
    *city_answers, other, fips = cold[len(COUNTRIES) + len(STATES) :]
    assert fips == "US-NY"
    for answer, (name, state) in zip(city_answers, CITIES.values(), strict=True):
        assert answer.value == name and (state is None or answer.state == state), answer
    assert other == EXPECTED_OTHER
    built = sorted(p.name for p in empty_cache.iterdir())  # the older tables are gone
    assert [name.split("-")[0] for name in built] == ["cities", "countries", "states"]
    assert built[1].endswith(".sqlite") and built[2].endswith(".sqlite")
    assert sorted(p.name for p in (empty_cache / built[0]).iterdir()) == ["_done", "cities.sqlite"]

    _clear_memory()

    def no_building(*args: object) -> Any:
        raise AssertionError("a warm cache was built again")

    monkeypatch.setattr(locations, "_build_countries", no_building)
    monkeypatch.setattr(locations, "_build_states", no_building)
    monkeypatch.setattr(cities, "_build", no_building)
    warm = answers()
    assert warm == cold


@pytest.mark.slow
def test_warm_answers_look_the_tables_up_instead_of_loading_them(empty_cache: Path) -> None:
    """A run that meets a few places holds a few megabytes of them, not the tables: loading the
    whole countries and states tables and the city tables of the four countries here took ~55 MB."""
    cold = answers()  # builds the tables
    _clear_memory()
    tracemalloc.start()
    try:
        warm = answers()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert warm == cold
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MB"


def test_tables_opened_in_one_thread_answer_the_same_in_another() -> None:
    """The sandbox resolves in its server's thread, with the tables the main thread opened."""
    here = answers()
    for memo in (locations.resolve_country, locations.resolve_state, cities.resolve_city):
        memo.cache_clear()  # answers only: the tables stay open
    elsewhere: list[Any] = []
    thread = threading.Thread(target=lambda: elsewhere.extend(answers()))
    thread.start()
    thread.join()
    assert elsewhere == here


@pytest.mark.slow
def test_an_unwritable_cache_still_resolves_countries_and_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is never needed for correctness: where it cannot be written (here its parent is
    a file), the country and state tables are built for the run alone."""
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_directory))
    _clear_memory()
    try:
        assert [locations.resolve_country(text).value for text in COUNTRIES] == list(COUNTRIES.values())
        assert [locations.resolve_state(*given).value for given in STATES] == list(STATES.values())
        assert locations.resolve_state("Gironna", "ES").suggestion == "ES-GI (Girona)"
    finally:
        _clear_memory()
