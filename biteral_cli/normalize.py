"""Value normalization: turns the raw fields of one row into the JSON payload of ``POST /customers``.

Every per-value rule (country, state, city, gender, isActive, yearBorn) is a pure function of the
text, cached per distinct value, so a million rows with a few hundred distinct values cost little
more than the dictionary look-ups. Nothing here raises on bad data: problems become warnings (the
field is sent as written or left out) or errors (the row is rejected).

Metadata merge rule: the keys of a JSON ``metadata`` column come first, and explicit
``metadata.x`` / extra columns override a key of the same name.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from biteral_cli.cities import fips_state, resolve_city
from biteral_cli.errors import UsageError
from biteral_cli.locations import country_name, fold_text, resolve_country, resolve_state, state_name
from biteral_cli.records import Extracted, Issue, Prepared, SourceRow
from biteral_cli.review import LocationReview

__all__ = ["NormalizeOptions", "Normalizer"]

_CACHE_SIZE = 65536
MIN_YEAR = 1900
_FIPS_RE = re.compile(r"[0-9A-Za-z]{2}")
_SHOW_CHARS = 60  # how much of a bad value a message quotes


@dataclass(frozen=True, kw_only=True)
class NormalizeOptions:
    """How values are normalized: strictness, empty cells, limits."""

    strict: bool = False
    """Turn every field warning (unknown country, bad year...) into a rejected row."""
    empty_as_null: bool = False
    """Send empty cells as ``null`` (which clears the field in Biteral) instead of leaving them out."""
    max_code_length: int = 255
    max_metadata_chars: int = 60000
    this_year: int | None = None
    """Latest plausible birth year; None means the current year."""
    infer_state: bool = True
    """Fill a missing state from a city that is unique or clearly dominant in its country."""

    def __post_init__(self) -> None:
        if self.max_code_length < 1:
            raise UsageError(f"max_code_length must be at least 1, not {self.max_code_length}")
        if self.max_metadata_chars < 2:
            raise UsageError(f"max_metadata_chars must be at least 2, not {self.max_metadata_chars}")
        if self.this_year is not None and not MIN_YEAR <= self.this_year <= 9999:
            raise UsageError(f"this_year must be between {MIN_YEAR} and 9999, not {self.this_year}")


class _Marker:
    """A named sentinel."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_EMPTY = _Marker("EMPTY")  # blank cell: left out, or null with empty_as_null
_DROP = _Marker("DROP")  # unusable value: not sent, a warning says why
_AMBIGUOUS_M = _Marker("AMBIGUOUS_M")
_MISSING = _Marker("MISSING")  # the field has no column  # bare "M": male or mujer, decided per column

#: (value to send or a marker, message or None)
_Outcome = tuple[Any, str | None]
#: How a rule reads the row's fields: ``dict.get``.
_Get = Callable[..., Any]
#: One value rule: (fields' get, payload, errors, warnings) -> None, filling what it owns.
_Rule = Callable[[_Get, dict[str, Any], list[Issue], list[Issue]], None]
#: The fields each of ``Normalizer.rules`` reads, in the same order.
RULE_FIELDS: tuple[tuple[str, ...], ...] = (("isActive",), ("country", "state", "city"), ("yearBorn",), ("gender",))


def _show(text: str) -> str:
    """Quote a raw value for a message, shortened when it is long."""
    if len(text) > _SHOW_CHARS:
        text = text[:_SHOW_CHARS] + "…"
    return repr(text)


def _finish(problem: str, kept: bool, strict: bool, hint: str = "") -> str:
    """A person-readable message: what is wrong, what happened to the value, and a hint."""
    if strict:
        return f"{problem}{hint}"
    return f"{problem}; {'sent as written' if kept else 'not sent'}{hint}"


# ---------------------------------------------------------------------------------------------
# Text conversion

_INTEGRAL_RE = re.compile(r"[+-]?\d+(?:\.0*)?")


def _as_text(value: Any) -> str | None:
    """The text of a raw cell value, or None for values that have no sensible text (dict, list)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):  # what dataframe-based readers put in blank numeric cells
            return ""
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return None


def _words(text: str) -> frozenset[str]:
    """The space-separated words of a table written as one string."""
    return frozenset(text.split())


# ---------------------------------------------------------------------------------------------
# code


def _normalize_code(value: Any, max_length: int) -> tuple[str | None, str | None]:
    """(code, None) for a usable code, else (code or None, error message)."""
    if value is None:
        return None, "code is missing"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None, f"code must be text, not {_json_kind(value)}"
    text = (_as_text(value) or "").strip()
    # Spreadsheets export text-formatted cells with a leading apostrophe ('00123).
    if text.startswith("'"):
        text = text[1:].strip()
    if not text:
        return None, "code is empty"
    if len(text) > max_length:
        return text, f"code is {len(text)} characters long; at most {max_length} are allowed"
    return text, None


# ---------------------------------------------------------------------------------------------
# isActive

_TRUE_WORDS = _words(
    "true t yes y 1 si s sim oui ja j vero active activo activa ativo ativa actif actifs aktiv "
    "attivo attiva enabled enable on alta"
)
_FALSE_WORDS = _words(
    "false f no n 0 non nein nao falso falsa faux falsch inactive inactivo inactiva inativo "
    "inativa inactif inaktiv inattivo inattiva disabled disable off baja"
)


@lru_cache(maxsize=_CACHE_SIZE)
def _bool_outcome(text: str, strict: bool) -> _Outcome:
    """isActive from text: true/false, yes/no, sí/no, 1/0, activo/inactivo and the like."""
    stripped = text.strip()
    if not stripped:
        return _EMPTY, None
    if _INTEGRAL_RE.fullmatch(stripped):
        number = int(stripped.split(".", 1)[0])
        if number in (0, 1):
            return bool(number), None
    else:
        key = fold_text(stripped)
        if key in _TRUE_WORDS:
            return True, None
        if key in _FALSE_WORDS:
            return False, None
    problem = f"isActive {_show(stripped)} is not a yes/no value"
    return _DROP, _finish(problem, False, strict, " (use true/false, yes/no, sí/no, 1/0)")


# ---------------------------------------------------------------------------------------------
# gender

_UNKNOWN, _MALE, _FEMALE, _OTHER = 0, 1, 2, 3
#: Folded word or phrase (see fold_text) -> gender code. "m" is not here: see _decide_m.
_GENDER_WORDS: dict[str, int] = {
    **dict.fromkeys(
        _words(
            "male man men masculine masc hombre varon masculino masculina homem homme masculin mann "
            "mannlich maennlich maschio maschile uomo h v"
        ),
        _MALE,
    ),
    **dict.fromkeys(
        _words(
            "female woman women feminine fem mujer femenino femenina feminino feminina mulher femme "
            "feminin frau weiblich femmina femminile donna f w"
        ),
        _FEMALE,
    ),
    **dict.fromkeys(
        (
            *_words("other otro otra otros outro outra autre andere anderes divers diverse altro"),
            *_words("altra d x nonbinary genderqueer"),
            *("non binary", "no binario", "nao binario", "non binaire", "nicht binar"),
            "non binario",
        ),
        _OTHER,
    ),
    **dict.fromkeys(
        (
            *_words("unknown u desconocido desconocida desconhecido inconnu unbekannt sconosciuto"),
            *("unspecified", "na", "not specified", "no especificado", "prefer not to say"),
            *("n a", "ns nc"),
        ),
        _UNKNOWN,
    ),
}

# Letters in a gender column that tell which language its "M" is in.
_SPANISH_M_HINTS = frozenset({"h", "v", "hombre", "varon"})  # with H/V (hombre/varón), M = mujer
_MALE_M_HINTS = frozenset({"f", "w"})  # with F (female/femme/femenino) or W (weiblich), M = male
_HEADER_LANGUAGES: dict[str, str] = {
    "sexo": "es",
    "genero": "es",
    "gender": "en",
    "sex": "en",
    "geschlecht": "de",
    "sexe": "fr",
    "genre": "fr",
    "sesso": "it",
    "genere": "it",
}


@lru_cache(maxsize=_CACHE_SIZE)
def _gender_outcome(text: str, strict: bool) -> _Outcome:
    """gender from text: 0-3 or a word in en/es/pt/fr/de/it; a bare M is left to the column."""
    stripped = text.strip()
    if not stripped:
        return _EMPTY, None
    if _INTEGRAL_RE.fullmatch(stripped):
        number = int(stripped.split(".", 1)[0])
        if 0 <= number <= 3:
            return number, None
    else:
        key = fold_text(stripped)
        if key == "m":
            return _AMBIGUOUS_M, None
        code = _GENDER_WORDS.get(key)
        if code is not None:
            return code, None
    problem = f"gender {_show(stripped)} is not a known gender"
    return _DROP, _finish(problem, False, strict, " (use 0-3, male/female/other/unknown or M/F/H)")


def _decide_m(header: str | None, sample: Sequence[Any]) -> int | None:
    """What a bare "M" means in this column (1 male, 2 female), or None when it cannot be told."""
    keys = set()
    for value in sample:
        text = _as_text(value)
        if text is not None and len(text) <= 40:
            keys.add(fold_text(text))
    spanish, male = bool(keys & _SPANISH_M_HINTS), bool(keys & _MALE_M_HINTS)
    if spanish != male:
        return _FEMALE if spanish else _MALE
    languages = {
        _HEADER_LANGUAGES[word] for word in re.split(r"[\W_]+", fold_text(header or "")) if word in _HEADER_LANGUAGES
    }
    if len(languages) == 1:
        return _FEMALE if languages == {"es"} else _MALE
    return None


# ---------------------------------------------------------------------------------------------
# yearBorn

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan enero ene janeiro janvier janv januar janner jänner gennaio gen",
        "february feb febrero fevereiro fev fevrier fevr februar febbraio",
        "march mar marzo marco mars marz maerz",
        "april apr abril abr avril avr aprile",
        "may mayo maio mai maggio mag",
        "june jun junio junho juin juni giugno giu",
        "july jul julio julho juillet juil juli luglio lug",
        "august aug agosto ago aout",
        "september sep sept septiembre setiembre set setembro septembre settembre",
        "october oct octubre outubro out octobre oktober okt ottobre ott",
        "november nov noviembre novembro novembre",
        "december dec diciembre dic dezembro dez decembre dezember dicembre",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[fold_text(_name)] = _number
_DATE_FILLER = _words(
    "de del of the th st nd rd le der den am el di do da du a o e y "
    "monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun "
    "lunes martes miercoles jueves viernes sabado domingo "
    "lundi mardi mercredi jeudi vendredi samedi dimanche "
    "montag dienstag mittwoch donnerstag freitag samstag sonntag "
    "lunedi martedi mercoledi giovedi venerdi sabato domenica "
    "segunda terca quarta quinta sexta feira"
)
_SERIAL_RE = re.compile(r"(\d{5,7})(?:\.\d+)?")
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_TIME_RE = re.compile(
    r"[T\s]*\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[ap]\.?\s?m\.?)?\s*(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT)?$",
    re.IGNORECASE,
)
#: What ``columnar`` keys birth dates by (its RE2 twins _ISO_DATE and _DMY_DATE): ASCII digits only.
_PLAIN_DATE_RE = re.compile(
    r"([0-9]{4})-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0?[1-9]|1[0-9]|2[0-8])[-/.](?:0?[1-9]|1[0-2])[-/.]([0-9]{4})"
)
_YMD_RE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_XYY_RE = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})")
_YM_RE = re.compile(r"(\d{4})[-/.](\d{1,2})")
_MY_RE = re.compile(r"(\d{1,2})[-/.](\d{4})")
_TOKEN_RE = re.compile(r"\d+|[^\W\d_]+")
_EXCEL_EPOCH = dt.date(1899, 12, 30).toordinal()


def _valid_day(year: int, month: int, day: int) -> bool:
    """True when day/month exist in that year (any year outside 1..9999 is checked as 2000)."""
    if not (1 <= month <= 12 and day >= 1):
        return False
    if day <= 28:  # the common case, without a calendar look-up
        return True
    check_year = year if 1 <= year <= 9999 else 2000
    return day <= calendar.monthrange(check_year, month)[1]


def _full_year(year_text: str, this_year: int) -> int:
    """A 4-digit year from 2 or 4 digits; a 2-digit year is the latest one not in the future."""
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000 if year <= this_year % 100 else 1900
    return year


def _year_of(text: str, this_year: int) -> int | None:
    """The year a text denotes (a year, a date in a common format, an Excel serial), or None."""
    if _INTEGRAL_RE.fullmatch(text):
        digits = text.split(".", 1)[0]
        if len(digits.lstrip("+-")) <= 4 or digits.startswith("-"):
            return int(digits)
    serial = _SERIAL_RE.fullmatch(text)
    if serial:
        try:
            return dt.date.fromordinal(_EXCEL_EPOCH + int(serial.group(1))).year
        except (ValueError, OverflowError):
            return None
    m = _COMPACT_DATE_RE.fullmatch(text)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return year if _valid_day(year, month, day) else None
    text = _TIME_RE.sub("", text).strip()
    m = _YMD_RE.fullmatch(text)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return year if _valid_day(year, month, day) else None
    m = _XYY_RE.fullmatch(text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        year = _full_year(m.group(3), this_year)
        # Only the year is needed: either day/month order will do, as long as one is a real date.
        return year if _valid_day(year, b, a) or _valid_day(year, a, b) else None
    m = _YM_RE.fullmatch(text) or _MY_RE.fullmatch(text)
    if m:
        first, second = m.group(1), m.group(2)
        year, month = (int(first), int(second)) if len(first) == 4 else (int(second), int(first))
        return year if 1 <= month <= 12 else None
    return _year_of_words(text, this_year)


def _year_of_words(text: str, this_year: int) -> int | None:
    """The year of a date written with a month name ("May 17, 1990", "17 de mayo de 1990")."""
    months: list[int] = []
    numbers: list[str] = []
    for token in _TOKEN_RE.findall(fold_text(text)):
        if token.isdigit():
            numbers.append(token)
        elif token in _MONTHS:
            months.append(_MONTHS[token])
        elif token not in _DATE_FILLER:
            return None
    if len(months) != 1 or not numbers or len(numbers) > 2:
        return None
    long_numbers = [n for n in numbers if len(n) == 4]
    if len(long_numbers) == 1:
        year_text = long_numbers[0]
        days = [n for n in numbers if n is not year_text]
    elif len(numbers) == 2 and all(len(n) <= 2 for n in numbers):
        days, year_text = [numbers[0]], numbers[1]  # "17-May-90"
    else:
        return None
    year = _full_year(year_text, this_year)
    if days and (len(days[0]) > 2 or not _valid_day(year, months[0], int(days[0]))):
        return None
    return year


@lru_cache(maxsize=_CACHE_SIZE)
def _year_outcome(text: str, this_year: int, strict: bool) -> _Outcome:
    """yearBorn from text: a plausible year, else a warning and nothing sent."""
    stripped = text.strip()
    if not stripped:
        return _EMPTY, None
    year = None if len(stripped) > 64 else _year_of(stripped, this_year)
    if year is None:
        problem = f"yearBorn {_show(stripped)} is not a valid year or date"
        return _DROP, _finish(problem, False, strict)
    if not MIN_YEAR <= year <= this_year:
        problem = (
            f"yearBorn {_show(stripped)} is not a plausible birth year ({MIN_YEAR}-{this_year})"
            if str(year) == stripped.split(".", 1)[0].lstrip("+")
            else f"yearBorn {_show(stripped)} gives the year {year}, outside {MIN_YEAR}-{this_year}"
        )
        return _DROP, _finish(problem, False, strict)
    return year, None


# ---------------------------------------------------------------------------------------------
# Locations


def _country_list(codes: Sequence[str]) -> str:
    """'CG (Congo) or CD (Congo, The Democratic Republic of the)'."""
    shown = [f"{c} ({country_name(c)})" for c in codes[:6]]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)


def _state_list(codes: Sequence[str]) -> str:
    """'ES-GR (Granada) or NI-GR (Granada)'."""
    shown = [f"{c} ({state_name(c)})" for c in codes[:6]]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)


@lru_cache(maxsize=_CACHE_SIZE)
def _country_outcome(text: str, strict: bool) -> tuple[Any, str | None, str | None]:
    """(value to send or a marker, resolved alpha-2 or None, message or None)."""
    stripped = text.strip()
    if not stripped:
        return _EMPTY, None, None
    res = resolve_country(stripped)
    if res.value is not None:
        return res.value, res.value, None
    shown = _show(stripped)
    if res.status == "ambiguous":
        problem = f"country {shown} is ambiguous: it could be {_country_list(res.candidates)}"
        return stripped, None, _finish(problem, True, strict)
    if stripped[:1] in "Qq" and stripped[1:].isdigit():
        problem = f"country {shown} is a WikiData ID this tool does not know"
        return stripped, None, _finish(problem, True, strict, " (the API resolves WikiData IDs)")
    hint = f" (did you mean {res.suggestion}?)" if res.suggestion else ""
    return stripped, None, _finish(f"country {shown} is not a known country", True, strict, hint)


@lru_cache(maxsize=_CACHE_SIZE)
def _state_outcome(text: str, country: str | None, strict: bool) -> _Outcome:
    """state within the resolved country: an ISO 3166-2 code, or the text with a warning."""
    stripped = text.strip()
    if not stripped:
        return _EMPTY, None
    res = resolve_state(stripped, country)
    if res.value is not None:
        return res.value, None
    if res.status == "former":
        return stripped, None  # a withdrawn code with several successors: the API knows it
    if res.status == "unknown" and country and _FIPS_RE.fullmatch(stripped):
        # Not an ISO 3166-2 code of the country (those come first): a FIPS 10-4 one ("36").
        fips = fips_state(stripped, country)
        if fips is not None:
            return fips, None
    shown = _show(stripped)
    where = f"country {country} ({country_name(country)})" if country else "any country"
    if res.status == "wrong_country":
        problem = f"state {shown} does not belong to {where}: it is {_state_list(res.candidates)}"
    elif res.status == "ambiguous":
        scope = f"in {where}" if country else "without a country"
        problem = f"state {shown} is ambiguous {scope}: it could be {_state_list(res.candidates)}"
    elif country is None and len(stripped) <= 3:
        problem = f"state {shown} looks like a code, and there is no known country to check it in"
    else:
        problem = f"state {shown} is not a known state of {where}"
    hint = f" (did you mean {res.suggestion}?)" if res.suggestion else ""
    return stripped, _finish(problem, True, strict, hint)


#: (value to send or a marker, warning or None, state to fill in or None, note or None)
_CityOutcome = tuple[Any, str | None, str | None, str | None]


@lru_cache(maxsize=_CACHE_SIZE)
def _city_outcome(
    text: str, country: str | None, state: str | None, has_state: bool, infer: bool, strict: bool
) -> _CityOutcome:
    """city within the row's country and state: the gazetteer's name, or the text with a warning.

    ``state`` is the row's resolved ISO 3166-2 code; ``has_state`` says whether the row gave any
    state at all (one that could not be resolved is neither checked against nor replaced).
    """
    collapsed = " ".join(text.split())
    if not collapsed:
        return _EMPTY, None, None, None
    res = resolve_city(collapsed, country, state)
    shown = _show(collapsed)
    where = f"country {country} ({country_name(country)})" if country else ""
    if res.status == "name":
        if not has_state and infer and res.state:
            note = (
                f"state filled in as {res.state} ({state_name(res.state)}) from city {shown} "
                "(--no-infer-state turns this off)"
            )
            return res.value, None, res.state, note
        return res.value, None, None, None
    if res.status == "wikidata":
        return res.value, None, None, None
    if res.status == "ambiguous":
        scope = f" in {state} ({state_name(state)})" if state else ""
        problem = f"ambiguous city {shown} in {where}{scope}: there are several"
        if res.candidates:
            problem += f", in {_state_list(res.candidates)}"
        return collapsed, _finish(problem + "; add a state" if not state else problem, True, strict), None, None
    if res.status == "contradicts":
        problem = f"city {shown} is not in state {state} ({state_name(state or '')})"
        if res.candidates:
            problem += f": it is in {_state_list(res.candidates)}"
        return collapsed, _finish(problem, True, strict), None, None
    if res.status == "unknown" and res.suggestion:
        # Only with a likely typo: the gazetteer lists places of 1,000+ inhabitants, so a smaller
        # one is no mistake (and the API may know it).
        problem = f"city {shown} is not a known city of {where}"
        return collapsed, _finish(problem, True, strict, f" (did you mean {res.suggestion!r}?)"), None, None
    return collapsed, None, None, None


# ---------------------------------------------------------------------------------------------
# metadata


def _jsonable(value: Any) -> Any:
    """A JSON-serializable form of a metadata value read from a cell (dates become ISO text)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Re-encoding parsed JSON text never makes it more than this many times longer (the worst case is
# a number: "1e15" comes back as "1000000000000000.0"), so short texts need no size check.
_REENCODE_GROWTH = 5
#: JSON (ensure_ascii=False) writes a character of a string as at most 6 characters ("\u001f").
_ESCAPE_GROWTH = 6


def _metadata(extracted: Extracted, options: NormalizeOptions) -> tuple[Any, str | None]:
    """(merged metadata object, or the _EMPTY / _DROP marker; error message or None)."""
    raw = extracted.metadata_json
    base: dict[str, Any] = {}
    given = False
    if isinstance(raw, str):
        if raw.strip():
            try:
                parsed = _DECODER.decode(raw)
            except (ValueError, RecursionError) as exc:
                return _DROP, f"metadata is not valid JSON ({_short_error(exc)})"
            if not isinstance(parsed, dict):
                return _DROP, f"metadata must be a JSON object, not {_json_kind(parsed)}"
            base, given = parsed, True
    elif isinstance(raw, dict):
        base, given = _jsonable(raw), True
    elif raw is not None:
        return _DROP, f"metadata must be a JSON object, not {_json_kind(raw)}"
    extra = extracted.metadata_extra
    # Upper bound of the merged object's JSON length, to skip encoding it just to measure it.
    bound = len(raw) * _REENCODE_GROWTH + 2 if isinstance(raw, str) else None if given else 2
    if extra:
        merged = dict(base)
        for k, v in extra.items():
            if type(k) is str and type(v) is str:
                merged[k] = v
                if bound is not None:
                    # A character takes at most 6 in JSON (\u00XX); plus quotes, colon and comma.
                    bound += _ESCAPE_GROWTH * (len(k) + len(v)) + 6
            else:
                merged[str(k)] = _jsonable(v)
                bound = None
        base, given = merged, True
    if not given:
        return _EMPTY, None
    if bound is not None and bound <= options.max_metadata_chars:
        return base, None
    try:
        size = len(_ENCODER.encode(base))
    except (ValueError, TypeError, RecursionError) as exc:
        return _DROP, f"metadata cannot be written as JSON ({_short_error(exc)})"
    if size > options.max_metadata_chars:
        return _DROP, (f"metadata is {size} characters of JSON; at most {options.max_metadata_chars} are allowed")
    return base, None


def _short_error(exc: BaseException) -> str:
    """The first line of an exception message, bounded."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def _json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# The row normalizer


class Normalizer:
    """Normalizes rows of one input: per-column decisions are taken once, values cached."""

    def __init__(
        self,
        options: NormalizeOptions,
        *,
        gender_header: str | None = None,
        gender_sample: Sequence[Any] = (),
        m_gender: int | None = None,
    ) -> None:
        """Decide, once for the column, whether a bare "M" means male or mujer (``m_gender``, the
        rule an earlier run recorded, when neither the header nor the sample tells)."""
        self.options = options
        self._strict = options.strict
        self._null_empty = options.empty_as_null
        self._this_year = options.this_year or dt.date.today().year
        self._max_code = options.max_code_length
        self._infer_state = options.infer_state
        self.review: LocationReview | None = None
        """When set, every prepared row's locations are counted in it (dry runs, --locations-report)."""
        decided = _decide_m(gender_header, gender_sample)
        self._m_gender = decided if decided is not None else m_gender
        problem = (
            "gender 'M' is ambiguous (male in English, mujer in Spanish) and neither the column "
            "header nor its other values tell which"
        )
        self._m_message = _finish(problem, False, self._strict, " (use 1/2, male/female or H/M)")
        #: The value rules after the code, in payload order: each fills the payload from the fields
        #: RULE_FIELDS names and depends on nothing else, so it can run once per distinct value.
        self.rules: tuple[_Rule, ...] = (self.active_rule, self.places_rule, self.year_rule, self.gender_rule)
        #: For the rules of one field: how one cell becomes (outcome, message), for callers that
        #: compute each distinct cell once (None for the places rule, whose fields go together).
        self.values: tuple[Callable[[Any], _Outcome] | None, ...] = (
            self.active_value,
            None,
            self.year_value,
            self.gender_value,
        )

    @property
    def m_gender(self) -> int | None:
        """What a bare "M" in the gender column is taken to mean: 1, 2, or None (undecided)."""
        return self._m_gender

    def prepare(self, row: SourceRow, extracted: Extracted) -> Prepared:
        """Normalize one row: a Prepared with a payload (JSON-ready dict, fields in FIELDS order)
        or errors; warnings either way."""
        fields = extracted.fields
        get = fields.get
        if row.error is not None:
            code, _problem = _normalize_code(get("code"), self._max_code)
            return Prepared(row, None, code, [Issue("", row.error)], [], "read")
        errors: list[Issue] = []
        warnings: list[Issue] = []
        payload: dict[str, Any] = {}
        code = self.code_rule(get, payload, errors, warnings)
        for rule in self.rules:
            rule(get, payload, errors, warnings)
        if extracted.metadata_json is not None or extracted.metadata_extra:
            outcome, message = _metadata(extracted, self.options)
            if outcome is _DROP:
                errors.append(Issue("metadata", message or "metadata is invalid"))
            elif outcome is _EMPTY:
                if self._null_empty:
                    payload["metadata"] = None
            else:
                payload["metadata"] = outcome
        if self.review is not None:
            self.review.record(fields, payload, errors, warnings)
        if errors:
            return Prepared(row, None, code, errors, warnings)
        return Prepared(row, payload, code, errors, warnings)

    def code_rule(self, get: _Get, payload: dict[str, Any], errors: list[Issue], warnings: list[Issue]) -> Any:
        """The customer code: into the payload when usable, else an error; returns it either way."""
        code = get("code")
        if type(code) is str and (code := code.strip()) and code[0] != "'" and len(code) <= self._max_code:
            payload["code"] = code
            return code
        code, problem = _normalize_code(code, self._max_code)
        if problem is not None:
            errors.append(Issue("code", problem))
        else:
            payload["code"] = code
        return code

    def _put(self, payload: dict[str, Any], name: str, outcome: Any) -> None:
        """Send ``outcome`` as field ``name``: an empty cell as null with --empty-as-null, nothing
        for a dropped value."""
        if outcome is _EMPTY:
            if self._null_empty:
                payload[name] = None
        elif outcome is not _DROP:
            payload[name] = outcome

    def active_rule(self, get: _Get, payload: dict[str, Any], errors: list[Issue], warnings: list[Issue]) -> None:
        """isActive."""
        self._single("isActive", self.active_value, get, payload, errors, warnings)

    def _single(
        self,
        name: str,
        value_of: Callable[[Any], _Outcome],
        get: _Get,
        payload: dict[str, Any],
        errors: list[Issue],
        warnings: list[Issue],
    ) -> None:
        """A rule of one field: its outcome into the payload, its message among the problems."""
        value = get(name, _MISSING)
        if value is _MISSING:
            return
        outcome, message = value_of(value)
        if message is not None:
            (errors if self._strict else warnings).append(Issue(name, message))
        self._put(payload, name, outcome)

    def active_value(self, value: Any) -> _Outcome:
        """isActive of one cell: (value or a marker, message or None)."""
        if type(value) is str:
            return _bool_outcome(value, self._strict)
        if type(value) is bool:
            return value, None
        return self._other("isActive", value, _bool_outcome)

    def places_rule(self, get: _Get, payload: dict[str, Any], errors: list[Issue], warnings: list[Issue]) -> None:
        """country, state and city: each resolved within the ones before it; a state may be filled in."""
        strict = self._strict
        problems = errors if strict else warnings
        outcome: Any
        message: str | None
        country: str | None = None
        value = get("country", _MISSING)
        if value is not _MISSING:
            text = value if type(value) is str else self._text(value)
            if text is None:
                outcome, message = _DROP, self._not_text("country", value)
            else:
                outcome, country, message = _country_outcome(text, strict)
            if message is not None:
                problems.append(Issue("country", message))
            self._put(payload, "country", outcome)

        state_code: str | None = None
        has_state = False
        value = get("state", _MISSING)
        if value is not _MISSING:
            text = value if type(value) is str else self._text(value)
            if text is None:
                outcome, message = _DROP, self._not_text("state", value)
            else:
                outcome, message = _state_outcome(text, country, strict)
            if message is not None:
                problems.append(Issue("state", message))
            self._put(payload, "state", outcome)
            if outcome is not _EMPTY and outcome is not _DROP:
                has_state = True
                if message is None and type(outcome) is str and outcome[2:3] == "-":
                    state_code = outcome

        value = get("city", _MISSING)
        if value is not _MISSING:
            text = value if type(value) is str else self._text(value)
            if text is None:
                outcome, message = _DROP, self._not_text("city", value)
                problems.append(Issue("city", message))
            else:
                outcome, message, filled, note = _city_outcome(
                    text, country, state_code, has_state, self._infer_state, strict
                )
                if message is not None:
                    problems.append(Issue("city", message))
                if filled is not None:
                    payload.pop("state", None)  # an empty state cell sent as null: replaced
                    payload["state"] = filled
                    warnings.append(Issue("state", note or ""))  # a note: never rejects the row
            self._put(payload, "city", outcome)

    def year_rule(self, get: _Get, payload: dict[str, Any], errors: list[Issue], warnings: list[Issue]) -> None:
        """yearBorn."""
        self._single("yearBorn", self.year_value, get, payload, errors, warnings)

    def year_key(self, text: str) -> str:
        """``text``, or the plausible year it holds when it is a date in ISO or day/month/year form
        whose day is at most 28 (valid in any month): the same yearBorn, cached per year."""
        found = _PLAIN_DATE_RE.fullmatch(text)
        if found is None:
            return text
        year = found.group(1) or found.group(2)
        return year if MIN_YEAR <= int(year) <= self._this_year else text

    @property
    def strict(self) -> bool:
        """Whether a value's problem rejects its row (--strict) instead of warning."""
        return self._strict

    @property
    def this_year(self) -> int:
        """The latest plausible birth year (the current year unless the options fix one)."""
        return self._this_year

    def year_value(self, value: Any) -> _Outcome:
        """yearBorn of one cell: (value or a marker, message or None)."""
        if type(value) is str:
            return _year_outcome(self.year_key(value), self._this_year, self._strict)
        if isinstance(value, dt.date):  # datetime too: Excel readers may give real dates
            value = str(value.year)
        return self._other("yearBorn", value, self._year)

    def gender_rule(self, get: _Get, payload: dict[str, Any], errors: list[Issue], warnings: list[Issue]) -> None:
        """gender, with a bare "M" read as the column decided."""
        self._single("gender", self.gender_value, get, payload, errors, warnings)

    def gender_value(self, value: Any) -> _Outcome:
        """gender of one cell: (value or a marker, message or None)."""
        if type(value) is str:
            outcome, message = _gender_outcome(value, self._strict)
        else:
            outcome, message = self._other("gender", value, _gender_outcome)
        if outcome is _AMBIGUOUS_M:
            outcome = self._m_gender
            if outcome is None:
                return _DROP, self._m_message
        return outcome, message

    def fragment(self, name: str, outcome: Any) -> bytes | None:
        """What field ``name`` with ``outcome`` adds to a payload's JSON (``,"name":value``, or
        nothing), or None when orjson cannot write it."""
        if outcome is _EMPTY:
            return b',"' + name.encode() + b'":null' if self._null_empty else b""
        if outcome is _DROP:
            return b""
        try:
            return b',"' + name.encode() + b'":' + orjson.dumps(outcome)
        except orjson.JSONEncodeError:
            return None

    def _year(self, text: str, strict: bool) -> _Outcome:
        """_year_outcome with this normalizer's idea of the current year."""
        return _year_outcome(text, self._this_year, strict)

    @staticmethod
    def _text(value: Any) -> str | None:
        """The text of a non-string cell; None (a JSON null) counts as an empty cell."""
        return "" if value is None else _as_text(value)

    def _not_text(self, name: str, value: Any) -> str:
        """The message for a JSON value that cannot stand for ``name`` (an object, a list)."""
        return _finish(f"{name} must be text, not {_json_kind(value)}", False, self._strict)

    def _other(self, name: str, value: Any, outcome_of: Callable[[str, bool], _Outcome]) -> _Outcome:
        """The outcome of a non-string value (JSON number, bool, null) for a number-like field."""
        if value is None:
            return _EMPTY, None
        if isinstance(value, bool) or _as_text(value) is None:
            kind = _json_kind(value)
            return _DROP, _finish(f"{name} cannot be {kind}", False, self._strict)
        return outcome_of(_as_text(value) or "", self._strict)
