"""Country and state resolution to ISO 3166 codes, from codes, names in many languages and aliases.

Lookup tables are built once, lazily, from pycountry's ISO 3166-1/-2 databases and their gettext
translations plus the small curated files in ``biteral_cli/data``. Every public function accepts
any string and never raises; results are cached per distinct input.
"""

from __future__ import annotations

import contextlib
import csv
import gettext
import hashlib
import importlib.metadata
import json
import marshal
import os
import re
import sqlite3
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pycountry
from rapidfuzz import fuzz, process

__all__ = [
    "Resolution",
    "country_name",
    "fold_text",
    "resolve_country",
    "resolve_state",
    "state_name",
]

_CACHE_SIZE = 65536
# Fuzzy suggestions on very long or very short texts are noise (and slow on long ones).
_FUZZY_MIN_LEN = 4
_FUZZY_MAX_LEN = 80
_FUZZY_CUTOFF = 78.0

# Lower tiers win; several codes on the best tier of a name make it ambiguous.
_TIER_EXACT = 0  # ISO names, official/common names, curated aliases
_TIER_VARIANT = 1  # "Korea" from "Korea, Republic of"; translations into the main languages
_TIER_OTHER = 2  # translations into every other language pycountry ships

_MAIN_LOCALES = frozenset({"en", "es", "pt", "pt_BR", "fr", "de", "it", "ca", "gl", "eu", "nl"})


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of resolving one country or state text."""

    value: str | None
    """Alpha-2 for countries; full ISO 3166-2 code ("ES-B") for states; None when not resolved."""
    status: str
    """"code" | "name" | "alias" | "wikidata" | "ambiguous" | "unknown" | "empty" | "wrong_country"
    | "former" (a withdrawn ISO 3166-2 code with no single successor: sent as written)."""
    candidates: tuple[str, ...] = ()
    """For "ambiguous" and "wrong_country": the codes the text could mean."""
    suggestion: str | None = None
    """For "unknown": a close known value, e.g. "ES (Spain)"."""


# ---------------------------------------------------------------------------------------------
# Text keys

_DROP_RE = re.compile(r"[.'’‘`´ʻʼ]")
# Punctuation and spaces separate words; letters and marks of every script stay (so Devanagari
# vowel signs do not split a word).
_SPLIT_RE = re.compile(r"[\s!-/:-@\[-`{-~¡-¿‐-―«»、。・，]+")
# Accents of Latin, Greek and Cyrillic letters once NFKD has split them off.
_ACCENT_RE = re.compile(r"[\u0300-\u036f]+")
_WORD_REPLACE = {"st": "saint", "ste": "sainte"}


def fold_text(text: str) -> str:
    """Fold ``text`` to a lookup key: no accents, no case, no dots or apostrophes, single spaces."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", _ACCENT_RE.sub("", unicodedata.normalize("NFKD", text)))
    text = text.casefold().replace("&", " and ")
    text = _DROP_RE.sub("", text)
    words = [_WORD_REPLACE.get(w, w) for w in _SPLIT_RE.split(text) if w]
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return " ".join(words)


_BRACKET_RE = re.compile(r"\[([^\]]*)\]")
_PAREN_RE = re.compile(r"\([^)]*\)")
_ALT_CODE_RE = re.compile(r"\s+[A-Z]{2}-[A-Z0-9]{1,3}$")
_SLASH_RE = re.compile(r"\s*/\s*")
_SPECIAL_RE = re.compile(r"[\[/(,]")


def _variants(name: str) -> Iterator[tuple[str, int]]:
    """Yield (text, tier offset) spellings of an ISO name: itself, bracketed and slashed alternatives,
    "Y X" for "X, Y", and with lower priority the part before a comma."""
    if not _SPECIAL_RE.search(name):
        yield name, 0
        return
    alternatives = [_ALT_CODE_RE.sub("", m) for m in _BRACKET_RE.findall(name)]
    base = _BRACKET_RE.sub("", name).strip()
    for whole in (base, *alternatives):
        parts = [whole, *(p for p in _SLASH_RE.split(whole) if p != whole)]
        for part in parts:
            part = part.strip()
            if not part:
                continue
            yield part, 0
            no_paren = _PAREN_RE.sub("", part).strip()
            if no_paren and no_paren != part:
                yield no_paren, 0
            if "," in no_paren:
                head, _, tail = no_paren.partition(",")
                yield f"{tail.strip()} {head.strip()}", 0
                yield head.strip(), 1


# ---------------------------------------------------------------------------------------------
# Data loading


def _data_rows(name: str) -> Iterator[list[str]]:
    """Rows of a bundled CSV data file, without its header and '#' comment lines."""
    text = resources.files("biteral_cli").joinpath("data", name).read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    rows = csv.reader(lines)
    next(rows, None)
    yield from rows


def _translations(domain: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(locale, msgid -> msgstr) for every locale pycountry ships a catalog of ``domain`` for."""
    base = pycountry.LOCALES_DIR
    for locale in sorted(os.listdir(base)):
        path = os.path.join(base, locale, "LC_MESSAGES", f"{domain}.mo")
        if not os.path.exists(path):
            continue
        # GNUTranslations directly, not gettext.translation(): that one keeps every catalog it
        # ever loaded in a module-level cache, megabytes we only need while building.
        try:
            with open(path, "rb") as fp:
                catalog = gettext.GNUTranslations(fp)
        except (OSError, ValueError, UnicodeDecodeError):  # a broken catalog costs one language
            continue
        yield locale, dict(catalog._catalog)  # type: ignore[attr-defined]


class _Interner:
    """Shares equal result tuples: most of the tens of thousands of names map to one code."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def __call__(self, value: tuple[Any, ...]) -> tuple[Any, ...]:
        return self._seen.setdefault(value, value)


def _add(table: dict[str, tuple[int, set[str], str]], text: str, code: str, tier: int, how: str) -> None:
    """Record that ``text`` names ``code`` at ``tier``; keep only the best tier per key."""
    key = fold_text(text)
    if not key:
        return
    current = table.get(key)
    if current is None or tier < current[0]:
        table[key] = (tier, {code}, how)
    elif tier == current[0]:
        current[1].add(code)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "biteral-import"


#: The packages the tables are built from; their versions are part of the cache key.
_SOURCES = ("pycountry", "babel", "countrystatecity-countries", "iso3166-2")


def _package_dir(package: ModuleType) -> Path:
    """Where a data package's files are installed.

    The data packages are imported only inside the table builders, which run once per machine
    (importing iso3166_2 or countrystatecity_countries costs ~0.1 s each; a warm start never pays it).
    """
    return Path(package.__file__ or ".").parent


def _version(package: str) -> str:
    """An installed distribution's version, or "-" when it is missing (the tables then lack it)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@lru_cache(maxsize=1)
def _tables_key() -> str:
    """Changes whenever what the tables are built from changes: this module, our data, the packages."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for package in _SOURCES:
        digest.update(f"{package}={_version(package)};".encode())
    for entry in sorted(resources.files("biteral_cli").joinpath("data").iterdir(), key=lambda e: e.name):
        digest.update(entry.name.encode() + entry.read_bytes())
    return digest.hexdigest()[:16]


class _Store:
    """A built table file (SQLite, opened read-only), looked up without loading it whole.

    One connection, shared by the threads of the process (the sandbox resolves in its own); every
    query is one indexed lookup, answers are cached by the callers per distinct input. A query
    that fails (the file damaged since it was opened, text no table can hold) finds nothing
    rather than raising.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> _Store:
        """The file at ``path``, read-only (sqlite3.Error when it is missing)."""
        # immutable: no locking or change checks (~3x faster a query); the file never changes once
        # built, a newer build replaces it (os.replace: a new file; open connections keep the old).
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        return cls(sqlite3.connect(uri, uri=True, check_same_thread=False))

    def rows(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection.execute(sql, tuple(params)).fetchall()
            except (sqlite3.Error, ValueError):  # ValueError: text SQLite cannot hold (lone surrogates)
                return []

    def named(self, where: str, params: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        """(status, codes) of the name the ``names`` table has ``where``, or None."""
        for how, codes in self.rows(f"SELECT how, codes FROM names WHERE {where}", params):
            return how, tuple(codes.split())
        return None

    def value(self, name: str) -> Any:
        """A value stored whole (marshal) in the ``meta`` table, or None."""
        for (blob,) in self.rows("SELECT value FROM meta WHERE name = ?", (name,)):
            with contextlib.suppress(EOFError, ValueError, TypeError):
                return marshal.loads(blob)
        return None


def _fill_meta(db: sqlite3.Connection, values: dict[str, Any]) -> None:
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    db.executemany("INSERT INTO meta VALUES (?, ?)", ((k, marshal.dumps(v)) for k, v in values.items()))


def _write_db(path: Path | str, fill: Callable[[sqlite3.Connection], None]) -> None:
    """Create the SQLite file ``path`` (a temporary name: callers os.replace it into place)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = OFF")  # a new file nobody reads before it is complete
        with db:
            fill(db)
    finally:
        db.close()


_T = TypeVar("_T")
_V = TypeVar("_V")


def _cached(
    name: str,
    build: Callable[[], _T],
    fill: Callable[[sqlite3.Connection, _T], None],
    view: Callable[[_Store, dict[str, Any]], _V],
) -> _V:
    """Open a built table from the user's cache, or build and store it (~1.5 s to build).

    Parsing every language's catalog at each start would cost every small cron import more time
    than its data does; and the file is looked up, not loaded (~2 ms to open, ~2 MB in memory).
    ``view`` makes the tables' object from the file and the small values it holds whole ("small"
    in its meta table), raising TypeError or KeyError when they are not what it needs. Any problem
    with the cache (unwritable, corrupt, stale) means building afresh; the cache is never needed
    for correctness: unwritable, the tables are kept in an in-memory database.
    """
    path = _cache_dir() / f"{name}-{_tables_key()}.sqlite"
    with contextlib.suppress(sqlite3.Error, TypeError, KeyError):
        store = _Store.open(path)
        return view(store, store.value("small"))
    data = build()
    with contextlib.suppress(OSError, sqlite3.Error):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-")
        os.close(fd)
        try:
            _write_db(tmp, lambda db: fill(db, data))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for stale in path.parent.glob(f"{name}-*"):  # tables of older versions or layouts (.marshal)
            if stale != path and stale.is_file():
                stale.unlink(missing_ok=True)
    with contextlib.suppress(sqlite3.Error, TypeError, KeyError):
        store = _Store.open(path)
        return view(store, store.value("small"))
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    with memory:
        fill(memory, data)
    store = _Store(memory)
    return view(store, store.value("small"))


@dataclass(slots=True)
class _CountryTables:
    alpha2: dict[str, str] = field(default_factory=dict)
    alpha3: dict[str, str] = field(default_factory=dict)
    numeric: dict[str, str] = field(default_factory=dict)
    names: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """key -> (status, codes)."""
    wikidata: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)
    fuzzy_keys: list[str] = field(default_factory=list)
    fuzzy_codes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Countries:
    """The country tables as a run uses them: names looked up in the file, the small maps in memory."""

    store: _Store
    alpha2: dict[str, str]
    alpha3: dict[str, str]
    numeric: dict[str, str]
    wikidata: dict[str, str]
    display: dict[str, str]

    def named(self, key: str) -> tuple[str, tuple[str, ...]] | None:
        """(status, codes) of a folded name, or None."""
        return self.store.named("key = ?", (key,))


_COUNTRY_SMALL = ("alpha2", "alpha3", "numeric", "wikidata", "display")


def _fill_countries(db: sqlite3.Connection, t: _CountryTables) -> None:
    db.execute("CREATE TABLE names (key TEXT PRIMARY KEY, how TEXT NOT NULL, codes TEXT NOT NULL) WITHOUT ROWID")
    db.executemany("INSERT INTO names VALUES (?, ?, ?)", ((k, h, " ".join(c)) for k, (h, c) in t.names.items()))
    small = {name: getattr(t, name) for name in _COUNTRY_SMALL}
    _fill_meta(db, {"small": small, "fuzzy": (t.fuzzy_keys, t.fuzzy_codes)})


@lru_cache(maxsize=1)
def _countries() -> _Countries:
    """The country lookup tables, built once per machine and then opened from the user's cache."""
    return _cached(
        "countries",
        _build_countries,
        _fill_countries,
        lambda store, small: _Countries(store, **{name: small[name] for name in _COUNTRY_SMALL}),
    )


@lru_cache(maxsize=1)
def _country_fuzzy() -> tuple[list[str], list[str]]:
    """(keys, codes) to suggest a country from, read only when a run meets an unknown country."""
    found = _countries().store.value("fuzzy")
    return found if isinstance(found, tuple) and len(found) == 2 else ([], [])


def _build_countries() -> _CountryTables:
    """Build the country lookup tables from pycountry and our data files."""
    t = _CountryTables()
    raw: dict[str, tuple[int, set[str], str]] = {}
    english: dict[str, list[str]] = {}
    for c in pycountry.countries:
        t.alpha2[c.alpha_2] = c.alpha_2
        t.alpha3[c.alpha_3] = c.alpha_2
        t.numeric[c.numeric] = c.alpha_2
        common = getattr(c, "common_name", None)
        official = getattr(c, "official_name", None)
        t.display[c.alpha_2] = common or c.name
        names = [n for n in (c.name, common, official) if n]
        english[c.alpha_2] = names
        for n in names:
            for text, offset in _variants(n):
                _add(raw, text, c.alpha_2, _TIER_EXACT + offset, "name")
    # ISO 3166-1 "exceptionally reserved" codes people really use.
    t.alpha2["UK"] = "GB"
    t.alpha2["EL"] = "GR"
    for locale, catalog in _translations("iso3166-1"):
        tier = _TIER_VARIANT if locale in _MAIN_LOCALES else _TIER_OTHER
        for alpha2, names in english.items():
            for n in names:
                translated = catalog.get(n)
                if translated and translated != n:
                    for text, _offset in _variants(translated):
                        # A part of a translation ("São Martinho" of "São Martinho (parte
                        # holandesa)", SX) never competes with a whole name (MF's).
                        _add(raw, text, alpha2, tier if text == translated else _TIER_OTHER, "name")
    for _locale, territories in _cldr_territories():
        for alpha2, name in territories.items():
            if alpha2 in english:
                # CLDR's names share a tier with the main translations: a name two locales give
                # to different countries ("Sant Martin", "Конго") becomes ambiguous.
                _add(raw, name, alpha2, _TIER_VARIANT, "name")
                for text, _offset in _variants(name):
                    if text != name:  # "Myanmar" and "Burma" from "Myanmar (Burma)"
                        _add(raw, text, alpha2, _TIER_OTHER, "name")
    for alias, alpha2 in _data_rows("country_aliases.csv"):
        _add(raw, alias, alpha2, _TIER_EXACT - 1, "alias")
    intern = _Interner()
    for key, (_tier, codes, how) in raw.items():
        t.names[key] = intern((how, intern(tuple(sorted(codes)))))
    for name, listed in _data_rows("country_ambiguous.csv"):
        t.names[fold_text(name)] = ("ambiguous", tuple(listed.split()))
    for qid, alpha2, _name in _data_rows("country_wikidata.csv"):
        t.wikidata[qid.upper()] = alpha2
    for key, (how, meant) in t.names.items():
        if len(meant) == 1 and key.isascii() and len(key) >= _FUZZY_MIN_LEN and how != "ambiguous":
            t.fuzzy_keys.append(key)
            t.fuzzy_codes.append(meant[0])
    return t


def _cldr_territories() -> Iterator[tuple[str, dict[str, str]]]:
    """(locale, territory code -> name) for every locale babel ships, CLDR's own data only.

    Without inheritance each name is read once, in the locale that defines it (en_GB only
    holds what differs from en): ~1 s for all ~1,100 locales instead of ~5 s. babel keeps one
    name per territory; CLDR's short and variant forms ("Hong Kong", "Burma") are not in its data,
    so they come from _variants() and pycountry's common names.
    """
    try:
        from babel import localedata
    except ImportError:  # the tables then have pycountry's names only
        return
    for locale in localedata.locale_identifiers():
        with contextlib.suppress(OSError, ValueError, KeyError, EOFError):
            territories = localedata.load(locale, merge_inherited=False).get("territories")
            if territories:
                yield locale, dict(territories)


@dataclass(slots=True)
class _StateTables:
    codes: dict[str, str] = field(default_factory=dict)
    """Any accepted code spelling ("ES-B", alternative codes) -> ISO 3166-2 code."""
    former: dict[str, str] = field(default_factory=dict)
    """A withdrawn ISO 3166-2 code -> its only successor, or "" when it has none or several."""
    by_country: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    """alpha-2 -> key -> (status, codes)."""
    parent: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)


def _without_ancestors(codes: Iterable[str], parent: dict[str, str]) -> tuple[str, ...]:
    """Drop codes that are ancestors of other codes in the set (a province beats its community)."""
    found = set(codes)
    ancestors: set[str] = set()
    for code in found:
        p = parent.get(code)
        while p is not None and p not in ancestors:
            ancestors.add(p)
            p = parent.get(p)
    return tuple(sorted(found - ancestors)) or tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class _States:
    """The subdivision tables as a run uses them: names looked up in the file, codes in memory."""

    store: _Store
    codes: dict[str, str]
    former: dict[str, str]
    parent: dict[str, str]
    display: dict[str, str]

    def named(self, country: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        """(status, codes) of a folded name within ``country``, or None."""
        return self.store.named("country = ? AND key = ?", (country, key))


_STATE_SMALL = ("codes", "former", "parent", "display")


def _fill_states(db: sqlite3.Connection, t: _StateTables) -> None:
    db.execute(
        "CREATE TABLE names (country TEXT NOT NULL, key TEXT NOT NULL, ord INTEGER NOT NULL,"
        " how TEXT NOT NULL, codes TEXT NOT NULL, PRIMARY KEY (country, key)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX names_key ON names (key)")
    db.executemany(
        "INSERT INTO names VALUES (?, ?, ?, ?, ?)",
        (
            (country, key, order, how, " ".join(codes))
            for country, table in t.by_country.items()
            for order, (key, (how, codes)) in enumerate(table.items())
        ),
    )
    _fill_meta(db, {"small": {name: getattr(t, name) for name in _STATE_SMALL}})


@lru_cache(maxsize=1)
def _states() -> _States:
    """The subdivision lookup tables, built once per machine and then opened from the user's cache."""
    return _cached(
        "states",
        _build_states,
        _fill_states,
        lambda store, small: _States(store, **{name: small[name] for name in _STATE_SMALL}),
    )


def _build_states() -> _StateTables:
    """Build the subdivision lookup tables from pycountry and our data files."""
    t = _StateTables()
    per_country: dict[str, dict[str, tuple[int, set[str], str]]] = {}
    names_of: dict[str, str] = {}  # code -> ISO name
    for s in pycountry.subdivisions:
        t.codes[s.code] = s.code
        if s.parent_code:
            t.parent[s.code] = s.parent_code
        t.display[s.code] = _BRACKET_RE.sub("", s.name).strip()
        names_of[s.code] = s.name
        table = per_country.setdefault(s.country_code, {})
        for text, offset in _variants(s.name):
            _add(table, text, s.code, _TIER_EXACT + offset, "name")
        for alt in re.findall(r"\b([A-Z]{2}-[A-Z0-9]{1,3})\]", s.name):
            t.codes.setdefault(alt, s.code)
    codes_named: dict[str, list[str]] = {}
    for code, name in names_of.items():
        codes_named.setdefault(name, []).append(code)
    for _locale, catalog in _translations("iso3166-2"):
        for name, translated in catalog.items():
            if not translated or translated == name or name not in codes_named:
                continue
            for code in codes_named[name]:
                table = per_country[code.split("-", 1)[0]]
                for text, _offset in _variants(translated):
                    _add(table, text, code, _TIER_VARIANT, "name")
    for code, name, native in _newer_subdivisions(t.codes):
        t.codes[code] = code
        t.display[code] = name
        table = per_country.setdefault(code.split("-", 1)[0], {})
        for text in {name, native} - {""}:
            for variant, offset in _variants(text):
                _add(table, variant, code, _TIER_EXACT + offset, "name")
    t.former = _former_codes(t.codes)
    for country, alias, code in _data_rows("state_aliases.csv"):
        _add(per_country.setdefault(country, {}), alias, code, _TIER_EXACT - 1, "alias")
    intern = _Interner()
    for country, table in per_country.items():
        t.by_country[country] = {
            key: intern((how, intern(_without_ancestors(codes, t.parent) if len(codes) > 1 else tuple(codes))))
            for key, (_tier, codes, how) in table.items()
        }
    return t


def _newer_subdivisions(known: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(code, name, native name) of the subdivisions countrystatecity-countries lists and pycountry
    does not: codes newer than pycountry's ISO data (Norway's 2024 counties NO-55, NO-40) and the
    codes the dr5hn countries-states-cities database gives dependencies (GP-01, JE-03)."""
    try:
        import countrystatecity_countries
    except ImportError:  # the tables then lack the newer codes; nothing else depends on them
        return
    base = _package_dir(countrystatecity_countries)
    for path in sorted((base / "data" / "by-country").glob("*/states.json")):
        with contextlib.suppress(OSError, ValueError):
            for state in json.loads(path.read_text(encoding="utf-8")):
                code = state.get("iso3166_2") or ""
                if _STATE_CODE_RE.fullmatch(code) and code.upper() == code and code not in known:
                    yield code, state.get("name") or code, state.get("native") or ""


_CODE_IN_TEXT_RE = re.compile(r"\b[A-Z]{2}-[A-Z0-9]{1,3}\b")
# "AU-NS -> AU-NSW" and "from MK-02 to MK-802": a code replaced by exactly one other.
_CODE_CHANGE_RE = re.compile(r"\b([A-Z]{2}-[A-Z0-9]{1,3})\s*(?:->|→|\bto\b)\s*([A-Z]{2}-[A-Z0-9]{1,3})\b")


def _former_codes(current: dict[str, str]) -> dict[str, str]:
    """Withdrawn ISO 3166-2 codes -> their only current successor ("" when none or several).

    Read from the change history the iso3166-2 package keeps per subdivision (ISO's Online
    Browsing Platform), plus our state_former.csv for withdrawals that history lacks.
    """
    successors: dict[str, set[str]] = {}
    texts: set[str] = set()
    with contextlib.suppress(ImportError, OSError, ValueError):
        import iso3166_2

        data = json.loads((_package_dir(iso3166_2) / "iso3166-2.json").read_text(encoding="utf-8"))
        for subdivisions in data.values():
            for sub in subdivisions.values():
                texts.update(h.get("Change") or "" for h in sub.get("history") or ())
    for text in texts:
        for old, new in _CODE_CHANGE_RE.findall(text):
            if old not in current and new in current:
                successors.setdefault(old, set()).add(new)
        for code in _CODE_IN_TEXT_RE.findall(text):
            if code not in current:
                successors.setdefault(code, set())
    for code, successor in _data_rows("state_former.csv"):
        successors.setdefault(code, set()).update([successor] if successor in current else [])
    return {code: next(iter(new)) if len(new) == 1 else "" for code, new in successors.items()}


def _anywhere(key: str) -> tuple[str, ...]:
    """The subdivisions of any country a folded name denotes (a province beats its community)."""
    t = _states()
    found: list[str] = []
    for (codes,) in t.store.rows("SELECT codes FROM names WHERE key = ?", (key,)):
        found.extend(codes.split())
    return _without_ancestors(found, t.parent) if len(found) > 1 else tuple(found)


# ---------------------------------------------------------------------------------------------
# Public API

_QID_RE = re.compile(r"[Qq][1-9][0-9]{0,11}")
_STATE_CODE_RE = re.compile(r"([A-Za-z]{2})\s*[-_ ]\s*([A-Za-z0-9]{1,3})")
_STATE_SUFFIX_RE = re.compile(r"[A-Za-z0-9]{1,3}")


def country_name(alpha2: str) -> str:
    """The English (common) name of a country code, or the code itself when it is not known."""
    return _countries().display.get(alpha2.upper(), alpha2)


def state_name(code: str) -> str:
    """The ISO name of a subdivision code ("ES-GI" -> "Girona"), or the code itself when unknown."""
    return _states().display.get(code.upper(), code)


@lru_cache(maxsize=_CACHE_SIZE)
def resolve_country(text: str) -> Resolution:
    """Resolve any text to an ISO 3166-1 alpha-2 code, or say why not; never raises."""
    stripped = text.strip()
    if not stripped:
        return Resolution(None, "empty")
    t = _countries()
    if _QID_RE.fullmatch(stripped):
        alpha2 = t.wikidata.get(stripped.upper())
        return Resolution(alpha2, "wikidata") if alpha2 else Resolution(None, "unknown")
    key = fold_text(stripped)
    compact = key.replace(" ", "").upper()
    named = t.named(key)
    # "Áo" is Austria in Vietnamese, not AO: text with letters beyond ASCII is never a code
    # (full-width "ＥＳ" still is).
    as_code = unicodedata.normalize("NFKC", stripped).isascii()
    if as_code and named is not None and len(compact) in (2, 3) and not stripped.isupper():
        # "Nga" is Russia in Vietnamese and NGA is Nigeria: a name that is also another
        # country's code is ambiguous unless written as a code (upper case).
        coded = t.alpha2.get(compact) if len(compact) == 2 else t.alpha3.get(compact)
        if coded is not None and named[1] != (coded,):
            return Resolution(None, "ambiguous", candidates=tuple(sorted({coded, *named[1]})))
    if not as_code:
        pass
    elif compact.isdigit() and len(compact) <= 3:
        # Spreadsheets drop the leading zeros of "040".
        alpha2 = t.numeric.get(compact.zfill(3))
        if alpha2:
            return Resolution(alpha2, "code")
    elif len(compact) == 2 and compact in t.alpha2:
        return Resolution(t.alpha2[compact], "code")
    elif len(compact) == 3 and compact in t.alpha3:
        return Resolution(t.alpha3[compact], "code")
    found = named
    if found is not None:
        how, codes = found
        if len(codes) == 1 and how != "ambiguous":
            return Resolution(codes[0], how)
        return Resolution(None, "ambiguous", candidates=codes)
    return Resolution(None, "unknown", suggestion=_suggest_country(key))


def _suggest_country(key: str) -> str | None:
    """A close known country for a misspelt name, as "ES (Spain)", or None."""
    if not (_FUZZY_MIN_LEN <= len(key) <= _FUZZY_MAX_LEN) or not key.isascii():
        return None
    keys, codes = _country_fuzzy()
    best = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
    if best is None:
        return None
    alpha2 = codes[best[2]]
    return f"{alpha2} ({country_name(alpha2)})"


@lru_cache(maxsize=_CACHE_SIZE)
def resolve_state(text: str, country: str | None) -> Resolution:
    """Resolve a state to an ISO 3166-2 code within ``country`` (alpha-2, or None for any country).

    A WikiData ID is passed through (status "wikidata", value = the ID); a state that only exists
    in other countries gives "wrong_country" with those codes; never raises.
    """
    stripped = text.strip()
    if not stripped:
        return Resolution(None, "empty")
    if _QID_RE.fullmatch(stripped):
        return Resolution(stripped.upper(), "wikidata")
    t = _states()
    cc = country.strip().upper() if country else None
    m = _STATE_CODE_RE.fullmatch(stripped)
    if m:
        written = f"{m.group(1)}-{m.group(2)}".upper()
        code = t.codes.get(written)
        if code is None and written in t.former:
            code = t.former[written] or None
            if code is None and (cc is None or written.startswith(f"{cc}-")):
                return Resolution(None, "former")  # no single successor: the API may know it
        if code is not None:
            if cc is None or code.startswith(f"{cc}-"):
                return Resolution(code, "code")
            return Resolution(None, "wrong_country", candidates=(code,))
    if cc is not None and _STATE_SUFFIX_RE.fullmatch(stripped):
        code = t.codes.get(f"{cc}-{stripped.upper()}")
        if code is not None and code.startswith(f"{cc}-"):
            return Resolution(code, "code")
    key = fold_text(stripped)
    if cc is not None:
        found = t.named(cc, key)
        if found is not None:
            how, codes = found
            if len(codes) == 1:
                return Resolution(codes[0], how)
            return Resolution(None, "ambiguous", candidates=codes)
        elsewhere = _anywhere(key)
        if elsewhere:
            return Resolution(None, "wrong_country", candidates=elsewhere)
        return Resolution(None, "unknown", suggestion=_suggest_state(key, cc))
    everywhere = _anywhere(key)
    if everywhere:
        if len(everywhere) == 1:
            code = everywhere[0]
            how = (t.named(code.split("-", 1)[0], key) or ("name", ()))[0]
            return Resolution(code, how)
        return Resolution(None, "ambiguous", candidates=everywhere)
    return Resolution(None, "unknown")


def _suggest_state(key: str, country: str) -> str | None:
    """A close known state of ``country`` for a misspelt name, as "ES-GI (Girona)", or None."""
    if not (_FUZZY_MIN_LEN <= len(key) <= _FUZZY_MAX_LEN):
        return None
    keys, codes = _state_fuzzy(country)
    best = process.extractOne(key, keys, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
    if best is None:
        return None
    code = codes[best[2]]
    return f"{code} ({state_name(code)})"


@lru_cache(maxsize=256)
def _state_fuzzy(country: str) -> tuple[list[str], list[str]]:
    """(keys, codes) of a country's subdivision names that mean one subdivision, in build order."""
    keys: list[str] = []
    codes: list[str] = []
    sql = "SELECT key, codes FROM names WHERE country = ? ORDER BY ord"
    for key, listed in _states().store.rows(sql, (country,)):
        if len(listed.split()) == 1:
            keys.append(key)
            codes.append(listed)
    return keys, codes
