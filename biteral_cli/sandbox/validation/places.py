"""Where a customer lives, as the API stores it: countries to ISO alpha-3, states to ISO 3166-2.

Accepts what the real API accepts (codes, numeric codes, WikiData ids, names in English or a
native language) and is never stricter: a well-formed code it cannot verify is stored as given.
"""

from __future__ import annotations

import collections
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pycountry

from biteral_cli import locations

_RESOLVE_CACHE = 16384


def _fold(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a place name."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().replace("’", "'").split())


def _fold_country(text: str) -> str:
    folded = _fold(text)
    return folded[4:] if folded.startswith("the ") else folded


_WIKIDATA_RE = re.compile(r"Q[1-9][0-9]{0,11}")
# ISO 3166-2 suffixes are 1-3 letters or digits; FIPS 10-4 subdivision codes are 2.
_STATE_CODE_RE = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})")
_STATE_SUFFIX_RE = re.compile(r"[A-Z0-9]{1,3}")

# Ids we can map to ISO; any other well-formed WikiData ID is stored as given.
_COUNTRY_WIKIDATA: dict[str, str] = {
    "Q29": "ESP", "Q30": "USA", "Q142": "FRA", "Q183": "DEU", "Q38": "ITA", "Q145": "GBR",
    "Q45": "PRT", "Q96": "MEX", "Q155": "BRA", "Q414": "ARG", "Q298": "CHL", "Q739": "COL",
    "Q419": "PER", "Q16": "CAN", "Q408": "AUS", "Q55": "NLD", "Q31": "BEL", "Q39": "CHE",
    "Q40": "AUT", "Q17": "JPN",
}  # fmt: skip

# English short names pycountry lacks, and a few native names the real API accepts.
_COUNTRY_ALIASES: dict[str, str] = {
    "russia": "RUS", "uk": "GBR", "great britain": "GBR", "britain": "GBR",
    "ivory coast": "CIV", "turkey": "TUR", "vatican": "VAT", "vatican city": "VAT",
    "brunei": "BRN", "cape verde": "CPV", "swaziland": "SWZ", "macedonia": "MKD",
    "burma": "MMR", "east timor": "TLS", "dr congo": "COD", "drc": "COD",
    "espana": "ESP", "deutschland": "DEU", "italia": "ITA", "brasil": "BRA",
    "osterreich": "AUT", "schweiz": "CHE", "suisse": "CHE", "svizzera": "CHE",
    "nederland": "NLD", "belgie": "BEL", "belgique": "BEL", "belgien": "BEL",
    "sverige": "SWE", "norge": "NOR", "danmark": "DNK", "suomi": "FIN", "polska": "POL",
}  # fmt: skip


def _country_name_keys(country: Any) -> set[str]:
    """Every folded name a country answers to: name, official and common name, and their parts."""
    keys: set[str] = set()
    for attr in ("name", "official_name", "common_name"):
        name = getattr(country, attr, None)
        if not name:
            continue
        keys.add(_fold_country(name))
        without_paren = re.sub(r"\s*\(.*?\)", "", name).strip()
        keys.add(_fold_country(without_paren))
        if "," in without_paren:
            # "Congo, The Democratic Republic of the" answers to "Congo" and to the uninverted form.
            base, rest = (part.strip() for part in without_paren.split(",", 1))
            keys.add(_fold_country(base))
            keys.add(_fold_country(f"{rest} {base}"))
    keys.discard("")
    return keys


@functools.cache
def _country_index() -> tuple[dict[str, set[str]], dict[str, str]]:
    """Folded name -> alpha-3 codes it matches; alpha-3 -> English name."""
    by_name: dict[str, set[str]] = collections.defaultdict(set)
    names: dict[str, str] = {}
    for country in pycountry.countries:
        names[country.alpha_3] = country.name
        for key in _country_name_keys(country):
            by_name[key].add(country.alpha_3)
    for alias, alpha3 in _COUNTRY_ALIASES.items():
        by_name[alias].add(alpha3)
    return dict(by_name), names


@dataclass(frozen=True)
class Resolved:
    """A resolved place: its code, or the error code and description to answer with."""

    code: str | None
    error: str | None = None
    description: str = ""


# Exports repeat a handful of spellings millions of times: resolve each distinct one once.
@functools.lru_cache(maxsize=_RESOLVE_CACHE)
def resolve_country(value: str) -> Resolved:
    """Resolve a country given as ISO code, numeric code, WikiData id or name to ISO alpha-3."""
    text = value.strip()
    upper = text.upper()
    if _WIKIDATA_RE.fullmatch(upper):
        # A well-formed WikiData ID is accepted as the real API would; one we cannot map to a
        # country is stored as given rather than refused (the sandbox is never stricter).
        return Resolved(_COUNTRY_WIKIDATA.get(upper, upper))
    if text.isdigit() and len(text) <= 3:
        found = pycountry.countries.get(numeric=text.zfill(3))
        if found:
            return Resolved(found.alpha_3)
        return Resolved(None, "unknown_country", f"Unknown country {value!r}")
    if len(text) == 2 and text.isalpha():
        found = pycountry.countries.get(alpha_2=upper)
        if found:
            return Resolved(found.alpha_3)
    if len(text) == 3 and text.isalpha():
        found = pycountry.countries.get(alpha_3=upper)
        if found:
            return Resolved(found.alpha_3)
    by_name, names = _country_index()
    key = _fold_country(text)
    exact = by_name.get(key, set())
    if len(exact) == 1:
        return Resolved(next(iter(exact)))
    candidates = exact
    if not candidates and key:
        pattern = re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")
        candidates = {code for name, codes in by_name.items() if pattern.search(name) for code in codes}
    if len(candidates) > 1:
        listed = ", ".join(f"{code} ({names[code]})" for code in sorted(candidates)[:6])
        return Resolved(None, "ambiguous_country", f"Country {value!r} matches several countries: {listed}")
    if not candidates:
        # The API takes a country's name "in English or native language": a name any CLDR locale
        # gives one country only (Deutschland, Nihon's 日本, Hong Kong SAR China) is not refused.
        known = locations.resolve_country(text)
        found = pycountry.countries.get(alpha_2=known.value) if known.value else None
        if found is not None:
            return Resolved(found.alpha_3)
    hint = f" (did you mean {next(iter(candidates))}?)" if candidates else ""
    return Resolved(None, "unknown_country", f"Unknown country {value!r}{hint}")


def _subdivision_name_keys(name: str) -> set[str]:
    """Folded names of a subdivision: 'A Coruña [La Coruña]' answers to both, and inverted forms."""
    keys: set[str] = set()
    match = re.fullmatch(r"(.*?)\s*\[(.*)\]\s*", name)
    parts = [match.group(1), match.group(2)] if match else [name]
    for part in parts:
        # The bracketed alternative may end with its own code: "Sir Ynys Môn GB-YNM".
        part = re.sub(r"\s+[A-Z]{2}-[A-Z0-9]+$", "", part).strip()
        if not part:
            continue
        keys.add(_fold(part))
        if "," in part:
            base, rest = (piece.strip() for piece in part.split(",", 1))
            keys.add(_fold(f"{rest} {base}"))
    keys.discard("")
    return keys


@functools.cache
def _subdivision_index() -> tuple[dict[str, set[str]], dict[str, str | None], dict[str, str]]:
    """Folded name -> ISO 3166-2 codes; code -> parent code; code -> display name."""
    by_name: dict[str, set[str]] = collections.defaultdict(set)
    parents: dict[str, str | None] = {}
    names: dict[str, str] = {}
    for sub in pycountry.subdivisions:
        parents[sub.code] = getattr(sub, "parent_code", None)
        names[sub.code] = sub.name
        for key in _subdivision_name_keys(sub.name):
            by_name[key].add(sub.code)
    return dict(by_name), parents, names


def _drop_ancestors(codes: set[str], parents: dict[str, str | None]) -> set[str]:
    """Keep the most specific of codes that name the same territory ('La Rioja' the province)."""
    ancestors: set[str] = set()
    for code in codes:
        parent = parents.get(code)
        for _ in range(10):  # hierarchies are at most a few levels deep
            if parent is None:
                break
            ancestors.add(parent)
            parent = parents.get(parent)
    return {code for code in codes if code not in ancestors}


@functools.lru_cache(maxsize=_RESOLVE_CACHE)
def resolve_state(value: str, country_alpha3: str | None) -> Resolved:
    """Resolve a state given as ISO 3166-2 code, code without prefix or name to ISO 3166-2."""
    text = value.strip()
    upper = text.upper()
    alpha2 = None
    if country_alpha3:
        country = pycountry.countries.get(alpha_3=country_alpha3)
        alpha2 = country.alpha_2 if country else None
    if _WIKIDATA_RE.fullmatch(upper):
        return Resolved(upper)  # well-formed, unverifiable here: stored as given
    by_name, parents, names = _subdivision_index()
    shaped = _STATE_CODE_RE.fullmatch(upper)
    if shaped:
        if alpha2 and shaped.group(1) != alpha2:
            return Resolved(None, "unknown_state", f"State {value!r} is not in country {country_alpha3}")
        if upper in parents or pycountry.countries.get(alpha_2=shaped.group(1)):
            # Former and newer ISO 3166-2 codes than pycountry knows are real API input (the
            # official SDK's example customers use LU-L, MK-85, NO-55...): a code of the right
            # shape for a real country is accepted and stored as given.
            return Resolved(upper)
    if alpha2 and _STATE_SUFFIX_RE.fullmatch(upper):
        if f"{alpha2}-{upper}" in parents:
            return Resolved(f"{alpha2}-{upper}")
        if len(upper) == 2 and upper.isdigit():
            return Resolved(upper)  # a FIPS 10-4 code ("36") within the country: stored as given
    matches = by_name.get(_fold(text), set())
    if alpha2:
        matches = {code for code in matches if code.startswith(f"{alpha2}-")}
    matches = _drop_ancestors(matches, parents)
    if len(matches) == 1:
        return Resolved(next(iter(matches)))
    if len(matches) > 1:
        listed = ", ".join(f"{code} ({names[code]})" for code in sorted(matches)[:6])
        return Resolved(None, "ambiguous_state", f"State {value!r} matches several: {listed}")
    known = locations.resolve_state(text, alpha2)  # names in every language pycountry and CLDR know
    if known.value is not None and known.status != "wikidata":
        return Resolved(known.value)
    where = f" in country {country_alpha3}" if country_alpha3 else ""
    return Resolved(None, "unknown_state", f"Unknown state {value!r}{where}")


def warm_up() -> None:
    """Build the name indexes now rather than in the first request that needs them (~0.2 s)."""
    resolve_country("Spain")
    resolve_state("Barcelona", "ESP")
    locations.resolve_country("Deutschland")
    locations.resolve_state("Nueva York", "US")
