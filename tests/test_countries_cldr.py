"""Every country name CLDR knows, in every locale babel ships, resolves (issue 13 §2).

The expectations are generated from babel itself, not from the resolver's tables: a name is
unambiguous when every locale that uses it (compared as the resolver compares text: case, accents
and punctuation aside) gives it to one country, it is not another country's ISO code, and our
curated list (data/country_ambiguous.csv: Congo, Korea, Saint Martin...) does not mark it.
"""

from __future__ import annotations

import collections
import csv
from functools import cache
from importlib import resources

import pycountry
import pytest
from babel import Locale, localedata

from biteral_cli.locations import fold_text, resolve_country

ISO = {c.alpha_2 for c in pycountry.countries}
CODES = {c.alpha_2: c.alpha_2 for c in pycountry.countries} | {c.alpha_3: c.alpha_2 for c in pycountry.countries}


@cache
def cldr_names() -> dict[str, set[str]]:
    """Every CLDR territory name of an ISO country in every babel locale -> the countries it names."""
    names: dict[str, set[str]] = collections.defaultdict(set)
    for locale in localedata.locale_identifiers():
        for code, name in Locale.parse(locale).territories.items():
            if code in ISO:
                names[name].add(code)
    return names


def countries_named(name: str) -> set[str]:
    """Every country ``name`` can mean: by any locale, by our curated list, or as an ISO code
    when it is written in ASCII ("Nga", Russia in Vietnamese, is also NGA; "Áo" is no code)."""
    codes = set(meanings()[fold_text(name)])
    code = CODES.get(fold_text(name).replace(" ", "").upper())
    if code is not None and name.isascii():
        codes.add(code)
    return codes


@cache
def meanings() -> dict[str, set[str]]:
    """Folded name -> every country any locale (or our curated list) gives that name to."""
    by_key: dict[str, set[str]] = collections.defaultdict(set)
    for name, codes in cldr_names().items():
        by_key[fold_text(name)].update(codes)
    # Our curated list of names that in common use denote two countries sharing them (the two
    # Congos, the two sides of Saint Martin...), whatever one CLDR locale says.
    curated = resources.files("biteral_cli").joinpath("data", "country_ambiguous.csv").read_text("utf-8")
    for name, codes_text in csv.reader(ln for ln in curated.splitlines()[1:] if not ln.startswith("#")):
        by_key[fold_text(name)].update(codes_text.split())
    return by_key


@pytest.mark.slow
def test_babel_ships_many_locales_and_names() -> None:
    assert len(localedata.locale_identifiers()) > 500
    assert len(cldr_names()) > 20000


@pytest.mark.slow
def test_every_unambiguous_cldr_name_resolves_to_its_country() -> None:
    unambiguous = {name: codes for name, codes in cldr_names().items() if len(countries_named(name)) == 1}
    wrong = {}
    missed = []
    for name, codes in unambiguous.items():
        got = resolve_country(name).value
        if got is None:
            missed.append(name)
        elif got not in codes:
            wrong[name] = (codes, got)
    assert wrong == {}
    assert missed == []
    assert len(unambiguous) > 0.99 * len(cldr_names())


@pytest.mark.slow
def test_an_ambiguous_cldr_name_is_never_guessed() -> None:
    ambiguous = [name for name in cldr_names() if len(countries_named(name)) > 1]
    guessed = {name: resolve_country(name) for name in ambiguous if resolve_country(name).value is not None}
    assert guessed == {}
    assert ambiguous  # CLDR does have such names: "Конго", "Sant Martin"


@pytest.mark.parametrize(
    ("name", "alpha2"),
    [("Hong Kong SAR China", "HK"), ("Myanmar (Burma)", "MM"), ("St. Vincent & Grenadines", "VC"),
     ("Caribbean Netherlands", "BQ"), ("Vatikanstadt", "VA"), ("Kongo-Kinshasa", "CD"), ("Islas Malvinas", "FK"),
     ("La Réunion", "RE"), ("Áo", "AT"), ("Burma", "MM"), ("São Martinho", "MF")],
)  # fmt: skip
def test_names_the_issue_measured_as_misses_resolve(name: str, alpha2: str) -> None:
    assert resolve_country(name).value == alpha2


@pytest.mark.parametrize(
    ("name", "candidates"),
    [("Koreya", {"KR", "KP"}), ("Конго", {"CG", "CD"}), ("Saint-Martin", {"MF", "SX"}), ("Nga", {"NG", "RU"})],
)
def test_names_of_several_countries_are_ambiguous_not_guessed(name: str, candidates: set[str]) -> None:
    res = resolve_country(name)
    assert (res.value, res.status) == (None, "ambiguous")
    assert candidates <= set(res.candidates)


def test_a_name_written_as_a_code_is_the_code() -> None:
    assert resolve_country("NGA").value == "NG"
    assert resolve_country("ＥＳ").value == "ES"
