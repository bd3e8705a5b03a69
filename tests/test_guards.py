"""Guards against silent guesses: a country name that means two countries is sent as written, warned.

Each test here names the guard in biteral_cli that it protects; removing that guard must make the
test fail (checked by hand when the test was written).
"""

from __future__ import annotations

import csv
import gettext
import json
import os
import re
import unicodedata
from pathlib import Path

import pycountry
import pytest
from babel import localedata
from typer.testing import CliRunner

from biteral_cli.cli import app

pytestmark = pytest.mark.usefixtures("in_tmp")

# The three names the issue found guessed: Koreya (az) went out as KP with the guard removed.
NAMED = {"Koreya": {"KP", "KR"}, "Конго": {"CD", "CG"}, "Гвиана": {"GF", "GY"}}


def _fold(text: str) -> str:
    """Case and Latin/Greek/Cyrillic accents folded: two spellings a person would call the same name.

    Deliberately weaker than the tool's own folding, so every pair found here is also one name to
    the tool (and the oracle does not reuse the code under test)."""
    decomposed = re.sub(r"[\u0300-\u036f]+", "", unicodedata.normalize("NFKD", text))
    return " ".join(unicodedata.normalize("NFC", decomposed).casefold().split())


def _names_of(country: object) -> set[str]:
    """A pycountry country's English names: ISO name, common and official name where it has them."""
    names = (getattr(country, attr, None) for attr in ("name", "common_name", "official_name"))
    return {name for name in names if name}


def _english_names() -> set[str]:
    return {_fold(name) for c in pycountry.countries for name in _names_of(c)}


def _cldr_owners() -> dict[str, dict[str, str]]:
    """Folded territory name -> {alpha-2: the name as written} over every locale babel ships."""
    countries = {c.alpha_2 for c in pycountry.countries}
    owners: dict[str, dict[str, str]] = {}
    for locale in localedata.locale_identifiers():
        territories = localedata.load(locale, merge_inherited=False).get("territories") or {}
        for code, name in territories.items():
            if code in countries:
                owners.setdefault(_fold(name), {}).setdefault(code, name)
    return owners


def _pycountry_catalogs() -> dict[str, dict[str, str]]:
    """locale -> pycountry's ISO 3166-1 translations (English name -> translated name)."""
    catalogs = {}
    for locale in sorted(os.listdir(pycountry.LOCALES_DIR)):
        path = Path(pycountry.LOCALES_DIR, locale, "LC_MESSAGES", "iso3166-1.mo")
        if path.exists():
            with open(path, "rb") as fh:
                catalogs[locale] = dict(gettext.GNUTranslations(fh)._catalog)  # type: ignore[attr-defined]
    return catalogs


def names_meaning_two_countries() -> dict[str, set[str]]:
    """Names that the translation data itself gives to two countries, each with those countries.

    Two sources, read here straight from the packages: a name that two CLDR locales give to
    different countries (Sant Martin, Tóga), and a name one pycountry catalog gives to two
    countries, whole or before its comma ("Koreya, Xalq Demokratik Respublikasi"). Left out: a
    country's English name, and a catalog's clash that CLDR settles by naming exactly one of the
    two that way (the README's rule: CLDR's names decide among translations).
    """
    cldr = _cldr_owners()
    english = _english_names()
    found = {next(iter(owners.values())): set(owners) for owners in cldr.values() if len(owners) > 1}
    seen = {_fold(name) for name in found}
    for catalog in _pycountry_catalogs().values():
        named: dict[str, dict[str, str]] = {}
        for c in pycountry.countries:
            for english_name in _names_of(c):
                translated = catalog.get(english_name)
                if translated and translated != english_name:
                    for text in {translated, translated.split(",")[0].strip()}:
                        named.setdefault(_fold(text), {}).setdefault(c.alpha_2, text)
        for key, owners in named.items():
            settled_by_cldr = len(set(cldr.get(key, {})) & set(owners)) == 1
            if len(owners) > 1 and key not in english and not settled_by_cldr and key not in seen:
                seen.add(key)
                found[next(iter(owners.values()))] = set(owners)
    return found


@pytest.mark.slow
def test_a_name_meaning_two_countries_is_sent_as_written_with_an_ambiguity_warning() -> None:
    """Protects the guard in locations.resolve_country that returns "ambiguous" when a name's best
    tier holds several countries (``if len(codes) == 1 and how != "ambiguous"``): without it
    `Koreya` is sent as KP and `Конго` as CD, silently."""
    generated = names_meaning_two_countries()
    assert len(generated) > 100  # the data really holds such names; an empty oracle proves nothing
    cases = {**generated, **NAMED}
    with open("in.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["code", "country"])
        writer.writerows([f"G{i:04d}", name] for i, name in enumerate(cases))
    result = CliRunner().invoke(
        app, ["in.csv", "--dry-run", "--output", "out.jsonl", "--warnings", "w.csv", "--summary-json", "s.json"]
    )
    assert result.exit_code == 0, result.output
    payloads = [json.loads(line) for line in Path("out.jsonl").read_text(encoding="utf-8").splitlines()]
    guessed = {name: p["country"] for p, name in zip(payloads, cases, strict=True) if p["country"] != name}
    assert guessed == {}  # every name kept as written, never a guess
    with open("w.csv", encoding="utf-8-sig", newline="") as fh:
        warnings = {row["code"]: row for row in csv.DictReader(fh)}
    for i, (name, countries) in enumerate(cases.items()):
        warning = warnings[f"G{i:04d}"]
        assert warning["_field"] == "country", name
        assert "ambiguous" in warning["_error"], (name, warning["_error"])
        assert all(country in warning["_error"] for country in countries), (name, warning["_error"])
    assert json.loads(Path("s.json").read_text(encoding="utf-8"))["warnings"] == len(cases)
