"""Column mapping: decide which column of an export feeds each customer field.

How a header is matched
-----------------------
A header is normalized (camelCase split, accents stripped with NFKD, casefolded, punctuation and
spaces dropped, and the linking words ``de/del/do/da/di/du/des/of/der/von`` removed), so
``MailingCountry``, ``mailing_country`` and ``Mailing  Country`` are the same. It is then looked up
in a synonym table (English, Spanish, Portuguese, French, German and Italian). Qualifier words
may come before or after the name:

* customer words (``customer``, ``contact``, ``client``/``cliente``, ``user``, ``Kunde``...) fit
  any field: ``Customer ID``, ``Código cliente``;
* place words fit country, state, city and email only, in three ranks:
  rank 1 ``address``, ``home``, ``primary``... (``Address Country``);
  rank 2 ``default``, ``billing``, ``mailing``, ``invoice``, ``facturación``... (``billing_city``,
  ``Default Address City``, ``MailingCountry``);
  rank 3 ``shipping``, ``delivery``, ``envío``, ``other``, ``work``... (``shipping_city``,
  ``OtherCity``).

The rule when several columns fit one field
-------------------------------------------
The winner is the column with, in this order: the stronger synonym (``State`` beats ``County``,
``Activo`` beats ``Baja`` beats ``Status``, a birth-year column beats a birth-date column); the
lowest place rank (unprefixed, then address/home, then default/billing/mailing, then
shipping/other); for country and state a code column over a name column (``Country Code`` beats
``Country``, because codes resolve unambiguously); then the leftmost column. Every such choice is
reported in ``Mapping.notes``; the losing columns are treated as unmapped (metadata by default).

Special cases: ``code`` comes from an id column; when there is none, from an email column, with a
note. A birth date column fills ``yearBorn`` (the normalizer takes the year out of the date).
A column meaning "deregistered/inactive" (``Baja``, ``Inactive``, ``Disabled``) fills
``isActive`` inverted: "no", "n", "0", "false" (and the same in the other languages) mean active,
any other non-empty value means inactive. ``Status`` fills ``isActive`` only as a last resort.

Metadata
--------
Columns that map to no field go into ``metadata`` under their header as written (like Voucherify's
CSV import); ``--no-extra-metadata`` drops them and ``--metadata-columns A,B`` keeps only those
(naming a column there also takes it away from the automatic field matching). Columns named
``metadata.x``, ``metadata_x``, ``metadata[x]`` or ``x (metadata)`` (Stripe) always go to key
``x``; a column named ``metadata`` holding a JSON object is merged by the normalizer. Keys that a
JSON row has but the header does not go to metadata as well, unless either flag restricts it.

Personal data stays home: an unmapped column whose header names personal data (names, emails,
phones, street address lines, postcodes, birth dates, free-text notes, IP addresses, national
ids, logins; in the six languages above, qualifiers like ``billing`` stripped; see
``personal_kind``) is left out of metadata, and ``Mapping.personal_left_out`` and the notes say
which and why. Naming it in ``--metadata-columns`` (or ``[metadata] columns``), or
``--personal-data include`` (``[metadata] personal_data = "include"``) sends it. ``metadata.x``
columns and a JSON ``metadata`` column are sent as they are: the export itself calls them metadata.

Overrides
---------
``--map FIELD=COLUMN`` (repeatable; ``--map FIELD=`` leaves the field empty) beats the mapping
file, which beats the automatic choice. The mapping file (TOML)::

    [columns]            # field = "Column header"; "" leaves the field empty
    code = "Customer ID"
    country = "País"
    [values.gender]      # raw cell text = value to use instead
    "H" = 1
    "M" = 2
    [defaults]           # value used when the cell is missing or empty
    isActive = true
    [metadata]           # optional
    columns = ["Plan", "Segment"]  # like --metadata-columns
    extra = true                   # like not --no-extra-metadata

``--no-extra-metadata`` or ``--metadata-columns`` on the command line replace the file's
``[metadata]`` section. ``write_mapping_file`` writes every field explicitly, so a saved mapping
keeps meaning the same thing when the export later gains columns.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from .entities.customers import CUSTOMERS
from .errors import ConfigError, InputError, UsageError
from .records import FIELDS, REPORT_COLUMNS, Extracted

_VALUE_FIELDS: tuple[str, ...] = tuple(f for f in FIELDS if f != "metadata")
_PLACE_FIELDS = frozenset({"country", "state", "city"})

# ---------------------------------------------------------------------------------------------
# Header normalization
# ---------------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+")
_LINK_WORDS = frozenset({"de", "del", "do", "da", "dos", "das", "di", "du", "des", "d", "of", "der", "von", "l"})


def _tokens(text: str) -> tuple[str, ...]:
    """Split a header into comparable words: camelCase split, accent-free, casefolded."""
    text = _CAMEL.sub(" ", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return tuple(w for w in _WORD.findall(text) if w not in _LINK_WORDS)


def _norm(text: str) -> str:
    return "".join(_tokens(text))


# ---------------------------------------------------------------------------------------------
# Synonyms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Role:
    field: str
    kind: str  # plain | id | email | code (country/state code) | inverted | status | birthdate
    pref: int  # 0 beats 1 beats 2
    langs: tuple[str, ...]


# Words that turn a country/state name column into a code column (``Country Code``, ``Cód. País``).
_CODE_WORDS = (
    "code",
    "codigo",
    "cod",
    "codice",
    "iso",
    "iso2",
    "iso3",
    "iso code",
    "alpha2",
    "abbreviation",
    "abbr",
    "abrev",
    "sigla",
    "kurzel",
)


def _build_synonyms() -> dict[str, _Role]:
    table: dict[str, tuple[str, str, int, list[str]]] = {}

    def add(key: str, fld: str, kind: str, pref: int, lang: str) -> None:
        known = table.get(key)
        if known is None:
            table[key] = (fld, kind, pref, [lang])
        elif (known[0], known[1]) == (fld, kind):
            if lang not in known[3]:
                known[3].append(lang)
            table[key] = (fld, kind, min(pref, known[2]), known[3])
        elif known[2] > pref:  # a stronger reading of the same word replaces a weaker one
            table[key] = (fld, kind, pref, [lang])

    for fld, kind, pref, lang, phrases in CUSTOMERS.synonyms:
        for phrase in phrases:
            add(_norm(phrase), fld, kind, pref, lang)
            if fld in ("country", "state") and kind == "plain":
                for word in _CODE_WORDS:
                    add(_norm(f"{phrase} {word}"), fld, "code", pref, lang)
                    add(_norm(f"{word} {phrase}"), fld, "code", pref, lang)
    return {k: _Role(f, kind, pref, tuple(langs)) for k, (f, kind, pref, langs) in table.items()}


_SYNONYMS = _build_synonyms()

_ENTITY_WORDS: dict[str, int] = dict.fromkeys(
    (
        "customer",
        "customers",
        "contact",
        "client",
        "cliente",
        "clientes",
        "kunde",
        "kunden",
        "user",
        "usuario",
        "utilisateur",
        "utente",
        "person",
        "persona",
        "pessoa",
        "member",
        "socio",
    ),
    0,
)
_PLACE_WORDS: dict[str, int] = {
    **dict.fromkeys(
        (
            "address",
            "addr",
            "adresse",
            "direccion",
            "domicilio",
            "endereco",
            "indirizzo",
            "anschrift",
            "home",
            "primary",
            "main",
            "principal",
            "residence",
            "residencia",
        ),
        1,
    ),
    **dict.fromkeys(
        (
            "default",
            "billing",
            "bill",
            "mailing",
            "invoice",
            "invoicing",
            "facturacion",
            "factura",
            "fiscal",
            "faturamento",
            "faturacao",
            "cobranca",
            "facturation",
            "rechnung",
            "rechnungs",
            "rechnungsadresse",
            "fatturazione",
        ),
        2,
    ),
    **dict.fromkeys(
        (
            "shipping",
            "ship",
            "delivery",
            "envio",
            "entrega",
            "livraison",
            "expedition",
            "lieferung",
            "liefer",
            "lieferadresse",
            "spedizione",
            "consegna",
            "other",
            "alternate",
            "alt",
            "secondary",
            "work",
            "business",
            "office",
        ),
        3,
    ),
}
_ENTITY_OR_PLACE = {**_PLACE_WORDS, **_ENTITY_WORDS}
_RANK_NAMES = {0: "unprefixed", 1: "address/home", 2: "default/billing/mailing", 3: "shipping/other"}


# Personal data: headers that name a person or a way to reach them. Such columns are kept out of
# metadata unless the user asks (--metadata-columns, the mapping file, --personal-data include).
# (kind, phrases in en/es/pt/fr/de/it); matched like field synonyms, qualifier words stripped.
_PERSONAL_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "name",
        (
            "name",
            "first name",
            "last name",
            "full name",
            "given name",
            "family name",
            "surname",
            "middle name",
            "salutation",
            "nombre",
            "apellido",
            "apellidos",
            "primer apellido",
            "segundo apellido",
            "nombre completo",
            "nome",
            "sobrenome",
            "apelido",
            "nome completo",
            "nom",
            "prenom",
            "nom famille",
            "nom complet",
            "vorname",
            "nachname",
            "familienname",
            "cognome",
            "nome e cognome",
        ),
    ),
    (
        "email",
        (
            "email",
            "e mail",
            "mail",
            "email address",
            "emailaddress",
            "correo",
            "correo electronico",
            "correio eletronico",
            "courriel",
            "adresse email",
            "adresse mail",
            "emailadresse",
            "mailadresse",
            "posta elettronica",
        ),
    ),
    (
        "phone",
        (
            "phone",
            "phone number",
            "telephone",
            "tel",
            "mobile",
            "mobile phone",
            "cell",
            "cell phone",
            "cellphone",
            "fax",
            "telefono",
            "movil",
            "celular",
            "telemovel",
            "telefone",
            "portable",
            "telefon",
            "telefonnummer",
            "handy",
            "mobiltelefon",
            "cellulare",
            "numero telefono",
        ),
    ),
    (
        "street address",
        (
            "address",
            "street",
            "street address",
            "address1",
            "address2",
            "address line",
            "address line1",
            "address line2",
            "line1",
            "line2",
            "direccion",
            "domicilio",
            "calle",
            "endereco",
            "morada",
            "rua",
            "adresse",
            "rue",
            "strasse",
            "anschrift",
            "indirizzo",
            "via",
        ),
    ),
    (
        "postcode",
        (
            "zip",
            "zip code",
            "zipcode",
            "postcode",
            "postal code",
            "post code",
            "codigo postal",
            "cod postal",
            "cp",
            "cep",
            "code postal",
            "postleitzahl",
            "plz",
            "cap",
            "codice postale",
        ),
    ),
    (
        "birth date",
        (
            "date birth",
            "dob",
            "birthdate",
            "birth date",
            "birthday",
            "fecha nacimiento",
            "f nacimiento",
            "nacimiento",
            "fec nacimiento",
            "data nascimento",
            "nascimento",
            "date naissance",
            "naissance",
            "geburtsdatum",
            "geburtstag",
            "data nascita",
            "cumpleanos",
        ),
    ),
    (
        "free-text note",
        (
            "note",
            "notes",
            "comment",
            "comments",
            "remark",
            "remarks",
            "description",
            "nota",
            "notas",
            "observaciones",
            "observacion",
            "comentario",
            "comentarios",
            "descripcion",
            "observacoes",
            "remarque",
            "remarques",
            "commentaire",
            "commentaires",
            "bemerkung",
            "bemerkungen",
            "notiz",
            "notizen",
            "kommentar",
            "commento",
            "osservazioni",
        ),
    ),
    (
        "IP address",
        (
            "ip",
            "ip address",
            "ipaddress",
            "last ip",
            "signup ip",
            "direccion ip",
            "endereco ip",
            "adresse ip",
            "ip adresse",
            "indirizzo ip",
        ),
    ),
    (
        "national id",
        (
            "nif",
            "dni",
            "nie",
            "ssn",
            "social security number",
            "national id",
            "passport",
            "pasaporte",
            "cpf",
            "codice fiscale",
            "steuernummer",
            "tax id",
        ),
    ),
    ("login", ("login", "username", "user name", "user login")),
)
_PERSONAL: dict[str, str] = {_norm(phrase): kind for kind, phrases in _PERSONAL_TABLE for phrase in phrases}


@functools.lru_cache(maxsize=4096)
def personal_kind(header: str) -> str | None:
    """The kind of personal data a header names ("email", "phone"...), or None."""
    words = _tokens(header)
    n = len(words)
    for stripped in range(n):
        for i in range(stripped + 1):
            j = stripped - i
            rest = words[:i] + words[n - j :]
            if not all(w in _ENTITY_OR_PLACE for w in rest):
                continue
            core = "".join(words[i : n - j])
            kind = _PERSONAL.get(core) or _PERSONAL.get(core.rstrip("0123456789"))
            if kind is not None:
                return kind
    return None


@dataclass(frozen=True, slots=True)
class _Match:
    role: _Role
    rank: int
    qualifiers: str  # "prefix 'billing'" / "suffix 'cliente'" / ""
    core: str  # the normalized words left once qualifiers are stripped


def _match_header(header: str) -> _Match | None:
    """The field a header names, with the fewest qualifier words stripped, or None."""
    words = _tokens(header)
    n = len(words)
    for stripped in range(n):
        for i in range(stripped + 1):
            j = stripped - i
            core = "".join(words[i : n - j])
            role = _SYNONYMS.get(core)
            if role is None:
                continue
            prefix, suffix = words[:i], words[n - j :]
            allowed = _ENTITY_OR_PLACE if role.field in _PLACE_FIELDS or role.kind == "email" else _ENTITY_WORDS
            if all(w in allowed for w in prefix + suffix):
                rank = max((allowed[w] for w in prefix + suffix), default=0)
                parts = []
                if prefix:
                    parts.append(f"prefix '{' '.join(prefix)}'")
                if suffix:
                    parts.append(f"suffix '{' '.join(suffix)}'")
                return _Match(role, rank, ", ".join(parts), core)
    return None


_META_PREFIXED = re.compile(r"^\s*meta[-_ ]?data\s*[._:\[]\s*(?P<key>.+?)\s*\]?\s*$", re.IGNORECASE)
_META_SUFFIXED = re.compile(r"^\s*(?P<key>.+?)\s*\(\s*meta[-_ ]?data\s*\)\s*$", re.IGNORECASE)
_META_JSON_NAMES = frozenset({"metadata", "metadatos", "metadados", "metadonnees", "metadaten", "metadati"})


def _explicit_metadata_key(header: str) -> str | None:
    """``x`` for ``metadata.x``/``metadata_x``/``metadata[x]``/``x (metadata)``, else None."""
    m = _META_PREFIXED.match(header) or _META_SUFFIXED.match(header)
    return m.group("key") if m else None


# ---------------------------------------------------------------------------------------------
# Options and results
# ---------------------------------------------------------------------------------------------


def _canonical_field(name: str) -> str | None:
    if name in FIELDS:
        return name
    wanted = _norm(name)
    for f in FIELDS:
        if f.casefold() == wanted:
            return f
    return None


def _unknown_field_message(name: str) -> str:
    close = difflib.get_close_matches(name, FIELDS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown field '{name}'{hint}; fields are: {', '.join(FIELDS)}"


PERSONAL_DATA_POLICIES = ("exclude", "include")


@dataclass(frozen=True, kw_only=True)
class MappingOptions:
    """How the user wants columns mapped: overrides, a mapping file and the metadata policy."""

    overrides: dict[str, str] = field(default_factory=dict)
    mapping_file: Path | None = None
    extra_metadata: bool = True
    metadata_columns: tuple[str, ...] | None = None
    #: "exclude": columns recognised as personal data stay out of metadata unless named; "include"
    personal_data: str = "exclude"
    #: --code-column: the column chosen on purpose as the code (beats --map code= and the file)
    code_column: str | None = None

    def __post_init__(self) -> None:
        if self.personal_data not in PERSONAL_DATA_POLICIES:
            raise UsageError(f"--personal-data must be include or exclude, not {self.personal_data!r}")
        canonical: dict[str, str] = {}
        for name, column in self.overrides.items():
            fld = _canonical_field(name)
            if fld is None:
                raise UsageError(f"--map {name}={column}: {_unknown_field_message(name)}")
            if not isinstance(column, str):
                raise UsageError(f"--map {name}: the column must be text")
            canonical[fld] = column
        object.__setattr__(self, "overrides", canonical)
        if self.metadata_columns is not None:
            object.__setattr__(self, "metadata_columns", tuple(self.metadata_columns))
            if not self.extra_metadata:
                raise UsageError(
                    "--no-extra-metadata and --metadata-columns cannot be combined: the first "
                    "drops every unmapped column, the second keeps some"
                )
        if self.mapping_file is not None and not isinstance(self.mapping_file, Path):
            object.__setattr__(self, "mapping_file", Path(self.mapping_file))


@dataclass(frozen=True, slots=True)
class ColumnChoice:
    """What one column of the input feeds, and why."""

    column: str
    target: str
    how: str


_MISSING: Any = object()
_INVERTED_FALSE = frozenset(
    {"", "0", "n", "no", "false", "f", "falso", "nao", "não", "non", "nein", "falsch", "off", "none", "-"}
)


def _inverted(value: Any) -> Any:
    """The isActive meaning of a cell from a "deregistered/inactive" column."""
    if isinstance(value, bool):
        return not value
    if value is None:
        return None
    if isinstance(value, int | float):
        return value == 0
    text = str(value).strip()
    if not text:
        return value
    return text.casefold() in _INVERTED_FALSE


def _scalar_text(value: Any) -> str | None:
    """The text a JSON scalar would have in a CSV: the key a value map is looked up by."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """The column chosen for every field, plus value maps and defaults; ``extract`` applies it."""

    columns: tuple[ColumnChoice, ...]
    value_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    extra_metadata: bool = True
    metadata_columns: tuple[str, ...] | None = None
    #: Columns kept out of metadata because they hold personal data: (column, kind).
    personal_left_out: tuple[tuple[str, str], ...] = ()
    #: Whether personal data may go to metadata (keys of JSON rows the header lacks included).
    include_personal: bool = False
    #: True when no column was chosen for code and the email column stands in for it.
    code_from_email: bool = False

    # Precomputed plan for extract(), built once from the fields above.
    _plan: tuple[tuple[str, str, dict[str, Any] | None, bool], ...] = field(init=False, repr=False, compare=False)
    _meta: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _json_column: str | None = field(init=False, repr=False, compare=False)
    _known: frozenset[str] = field(init=False, repr=False, compare=False)
    _defaults: tuple[tuple[str, Any], ...] = field(init=False, repr=False, compare=False)
    _new_keys: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = []
        unmapped: list[tuple[str, str]] = []
        explicit: list[tuple[str, str]] = []
        json_column = None
        for choice in self.columns:
            target = choice.target
            if target in _VALUE_FIELDS:
                inverted = target == "isActive" and _inverted_column(choice.column)
                plan.append((target, choice.column, self.value_maps.get(target), inverted))
            elif target == "metadata":
                json_column = json_column or choice.column
            elif target.startswith("metadata."):
                key = target[len("metadata.") :]
                (explicit if _explicit_metadata_key(choice.column) else unmapped).append((choice.column, key))
        setattr_ = object.__setattr__
        setattr_(self, "_plan", tuple(plan))
        # Explicit metadata.x columns come last so that they win a clash of keys.
        setattr_(self, "_meta", tuple(unmapped + explicit))
        setattr_(self, "_json_column", json_column)
        setattr_(self, "_known", frozenset(c.column for c in self.columns))
        setattr_(self, "_defaults", tuple(self.defaults.items()))
        setattr_(self, "_new_keys", self.extra_metadata and self.metadata_columns is None)

    def field_values(self) -> list[tuple[str, str | None, Callable[[Any], Any] | None]]:
        """(field, column or None, how a cell becomes the field's raw value or None for "as is")
        for every field the mapping fills, columns first then defaults; what ``extract`` does per
        field, for callers that convert a column's distinct values once."""
        found: list[tuple[str, str | None, Callable[[Any], Any] | None]] = []
        defaults = self.defaults
        for fld, column, vmap, inverted in self._plan:
            convert = functools.partial(_mapped, vmap=vmap, inverted=inverted) if vmap is not None or inverted else None
            if fld in defaults:
                convert = functools.partial(_with_default, convert=convert, default=defaults[fld])
            found.append((fld, column, convert))
        planned = {fld for fld, _, _ in found}
        found.extend((fld, None, None) for fld in defaults if fld not in planned)
        return found

    def metadata_plan(self, headers: Sequence[str]) -> tuple[tuple[tuple[str, str], ...], str | None] | None:
        """((column, metadata key) in merge order, the JSON metadata column or None) for a table
        with ``headers``; None when a row's metadata cannot be built column by column (two columns
        share a key, or a column outside the mapping adds one)."""
        keys = [key for _, key in self._meta]
        if len(set(keys)) != len(keys):
            return None
        if self._new_keys and any(
            header not in self._known and (self.include_personal or personal_kind(header) is None) for header in headers
        ):
            return None
        return self._meta, self._json_column

    def field_column(self, field: str) -> str | None:
        """The column that feeds ``field`` (``metadata`` = the JSON metadata column), or None."""
        for choice in self.columns:
            if choice.target == field:
                return choice.column
        return None

    def extract(self, cells: dict[str, Any]) -> Extracted:
        """Pull one row's raw field values and metadata out, applying value maps and defaults."""
        get = cells.get
        fields: dict[str, Any] = {}
        for fld, column, vmap, inverted in self._plan:
            value = get(column, _MISSING)
            if value is _MISSING:
                continue
            fields[fld] = _mapped(value, vmap, inverted) if vmap is not None or inverted else value
        for fld, default in self._defaults:
            if _blank(fields.get(fld)):
                fields[fld] = default
        metadata: dict[str, Any] = {}
        for column, key in self._meta:
            value = get(column)
            if value is None or (isinstance(value, str) and (not value or value.isspace())):
                continue
            metadata[key] = value
        if self._new_keys:
            new = cells.keys() - self._known
            for key in new:
                value = cells[key]
                if value is None or (isinstance(value, str) and (not value or value.isspace())):
                    continue
                if not self.include_personal and personal_kind(key) is not None:
                    continue
                metadata[_explicit_metadata_key(key) or key] = value
        metadata_json = None
        if self._json_column is not None:
            metadata_json = get(self._json_column)
            if isinstance(metadata_json, str) and not metadata_json.strip():
                metadata_json = None
        return Extracted(fields=fields, metadata_json=metadata_json, metadata_extra=metadata)


def _mapped(value: Any, vmap: dict[str, Any] | None, inverted: bool) -> Any:
    """One cell's field value under a value map (looked up as written, then trimmed) and the
    inversion of a "deregistered" column."""
    if vmap is not None:
        key = value if isinstance(value, str) else _scalar_text(value)
        if key is not None and key in vmap:
            return vmap[key]
        if isinstance(value, str):
            stripped = value.strip()
            if stripped in vmap:
                return vmap[stripped]
        elif isinstance(value, bool) and str(value) in vmap:
            return vmap[str(value)]
    return _inverted(value) if inverted else value


def _blank(value: Any) -> bool:
    """A value a default replaces: none, or only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def _with_default(value: Any, *, convert: Callable[[Any], Any] | None, default: Any) -> Any:
    """A cell's field value with the mapping's default in place of a blank one."""
    value = convert(value) if convert is not None else value
    return default if _blank(value) else value


def _inverted_column(header: str) -> bool:
    match = _match_header(header)
    return match is not None and match.role.kind == "inverted"


# ---------------------------------------------------------------------------------------------
# Mapping files
# ---------------------------------------------------------------------------------------------

_SCALARS = (str, bool, int, float, date, time)


def load_mapping_file(path: Path) -> dict[str, Any]:
    """Read and check a mapping file into ``columns``, ``values``, ``defaults``, ``metadata``."""
    where = f"mapping file {path}"
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text") from exc

    unknown = set(raw) - {"columns", "values", "defaults", "metadata"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown section {', '.join(sorted(unknown))}; sections are: columns, values, defaults, metadata"
        )

    def table(value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        return value

    def field_name(name: str, section: str, allow_metadata: bool) -> str:
        fld = _canonical_field(name)
        if fld is None or (fld == "metadata" and not allow_metadata):
            fields = FIELDS if allow_metadata else _VALUE_FIELDS
            raise ConfigError(f"{where}: unknown field '{name}' in [{section}]; fields are: {', '.join(fields)}")
        return fld

    def scalar(value: Any, name: str) -> Any:
        if not isinstance(value, _SCALARS):
            raise ConfigError(f"{where}: {name} must be a text, number, boolean or date")
        return value

    columns: dict[str, str] = {}
    for name, column in table(raw.get("columns", {}), "columns").items():
        if not isinstance(column, str):
            raise ConfigError(f"{where}: columns.{name} must be a column header in quotes")
        columns[field_name(name, "columns", True)] = column

    values: dict[str, dict[str, Any]] = {}
    for name, vmap in table(raw.get("values", {}), "values").items():
        fld = field_name(name, "values", False)
        values[fld] = {text: scalar(v, f"values.{name}.{text}") for text, v in table(vmap, f"values.{name}").items()}

    defaults: dict[str, Any] = {}
    for name, value in table(raw.get("defaults", {}), "defaults").items():
        fld = field_name(name, "defaults", False)
        if fld == "code":
            raise ConfigError(f"{where}: code cannot have a default (every customer needs its own)")
        defaults[fld] = scalar(value, f"defaults.{name}")

    meta = table(raw.get("metadata", {}), "metadata")
    unknown = set(meta) - {"columns", "extra", "personal_data"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {', '.join(sorted(unknown))} in [metadata]; keys are: columns, extra, personal_data"
        )
    personal = meta.get("personal_data")
    if personal is not None and personal not in PERSONAL_DATA_POLICIES:
        raise ConfigError(f'{where}: metadata.personal_data must be "include" or "exclude"')
    meta_columns = meta.get("columns")
    if meta_columns is not None and (
        not isinstance(meta_columns, list) or not all(isinstance(c, str) for c in meta_columns)
    ):
        raise ConfigError(f"{where}: metadata.columns must be a list of column headers")
    extra = meta.get("extra")
    if extra is not None and not isinstance(extra, bool):
        raise ConfigError(f"{where}: metadata.extra must be true or false")
    if meta_columns is not None and extra is False:
        raise ConfigError(f"{where}: metadata.columns and metadata.extra = false cannot be combined")
    return {
        "columns": columns,
        "values": values,
        "defaults": defaults,
        "metadata": {
            "columns": tuple(meta_columns) if meta_columns is not None else None,
            "extra": extra,
            "personal_data": personal,
        },
    }


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return _toml_string(value)
    raise ConfigError(f"cannot write {value!r} to a mapping file")


def _comment(text: str) -> str:
    # A comment must stay on one line whatever the header contains.
    return json.dumps(text, ensure_ascii=False)[1:-1].replace("\x7f", "\\u007f")


def write_mapping_file(mapping: Mapping, path: Path) -> None:
    """Save ``mapping`` as a TOML mapping file that ``--mapping`` reads back to the same mapping."""
    lines = [
        "# biteral-import column mapping; use it with: biteral-import import --mapping FILE",
        '# [columns] field = "Column header" ("" leaves the field empty).',
        "# Decisions when this file was written:",
    ]
    for choice in mapping.columns:
        lines.append(f"#   {_comment(choice.column)} -> {choice.target} ({_comment(choice.how)})")
    lines += ["", "[columns]"]
    for fld in FIELDS:
        lines.append(f"{fld} = {_toml_string(mapping.field_column(fld) or '')}")
    for fld, vmap in mapping.value_maps.items():
        lines += ["", f"[values.{_toml_key(fld)}]"]
        lines += [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in vmap.items()]
    if mapping.defaults:
        lines += ["", "[defaults]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in mapping.defaults.items()]
    lines += ["", "[metadata]"]
    if mapping.metadata_columns is not None:
        lines.append(f"columns = [{', '.join(_toml_string(c) for c in mapping.metadata_columns)}]")
    else:
        lines.append(f"extra = {_toml_value(mapping.extra_metadata)}")
    lines.append(f"personal_data = {_toml_string('include' if mapping.include_personal else 'exclude')}")
    try:
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write mapping file {path}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------------------------
# Choosing
# ---------------------------------------------------------------------------------------------


def _resolve_column(name: str, headers: Sequence[str]) -> str | None:
    """The header ``name`` designates: exactly, or the only one equal once normalized."""
    if name in headers:
        return name
    wanted = _norm(name)
    found = [h for h in headers if _norm(h) == wanted]
    return found[0] if len(set(found)) == 1 and wanted else None


#: Columns an error message lists by name; a file with 100,000 columns must not print them all.
_LISTED_COLUMNS = 20


def _listed(headers: Sequence[str]) -> str:
    """The headers quoted and comma-separated, cut after _LISTED_COLUMNS with a count of the rest."""
    shown = ", ".join(f"'{h}'" for h in headers[:_LISTED_COLUMNS])
    rest = len(headers) - _LISTED_COLUMNS
    return f"{shown} and {rest} more" if rest > 0 else shown


def _no_column(flag: str, name: str, headers: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(headers), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    listed = _listed(headers)
    return f"{flag}: no column '{name}'{hint}; columns are: {listed}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    column: str
    index: int
    match: _Match

    def key(self) -> tuple[int, int, int, int]:
        return (self.match.role.pref, self.match.rank, 0 if self.match.role.kind == "code" else 1, self.index)


def _how(match: _Match) -> str:
    role = match.role
    if match.core == role.field.casefold():
        base = "exact"
    elif role.kind == "birthdate":
        base = f"birth date -> year ({'/'.join(role.langs)})"
    else:
        base = f"synonym ({'/'.join(role.langs)})"
    if role.kind == "inverted":
        base += ", inverted: a filled cell means inactive"
    elif role.kind == "status":
        base += ", weak: values must read active/inactive"
    elif role.kind == "code":
        base += ", code column"
    return f"{base}, {match.qualifiers}" if match.qualifiers else base


def _lost_reason(winner: _Candidate, loser: _Candidate) -> str:
    w, lo = winner.match, loser.match
    if w.role.pref != lo.role.pref:
        return "a stronger name wins"
    if w.rank != lo.rank:
        return f"{_RANK_NAMES[w.rank]} beats {_RANK_NAMES[lo.rank]}"
    if (w.role.kind == "code") != (lo.role.kind == "code"):
        return "code columns win"
    return "the leftmost of equal columns wins"


def build_mapping(headers: Sequence[str], options: MappingOptions) -> Mapping:
    """Choose a target for every header; raise ConfigError/UsageError for a bad override and
    InputError("no column can be the customer code: ...") when nothing can be the code."""
    headers = list(headers)
    file = load_mapping_file(options.mapping_file) if options.mapping_file is not None else None
    file_where = f"mapping file {options.mapping_file}"

    # Explicit choices: the mapping file first, --map on top of it.
    explicit: dict[str, tuple[str | None, str]] = {}  # field -> (column or None, how)
    if file is not None:
        for fld, name in file["columns"].items():
            column = _resolve_column(name, headers) if name else None
            if name and column is None:
                flag = f"{file_where}: columns.{fld} = '{name}'"
                raise ConfigError(_no_column(flag, name, headers))
            explicit[fld] = (column, "mapping file")
    overrides = dict(options.overrides)
    if options.code_column is not None:
        overrides["code"] = options.code_column
    for fld, name in overrides.items():
        flag = "--code-column" if fld == "code" and options.code_column is not None else "--map"
        shown = f"{flag} {name}" if flag == "--code-column" else f"--map {fld}={name}"
        column = _resolve_column(name, headers) if name else None
        if name and column is None:
            raise UsageError(_no_column(shown, name, headers))
        how = flag if column == name or column is None else shown
        explicit[fld] = (column, how)
    by_column: dict[str, str] = {}
    for fld, (column, how) in explicit.items():
        if column is None:
            continue
        if column in by_column:
            error = ConfigError if how == "mapping file" else UsageError
            raise error(
                f"{how}: column '{column}' is given to both {by_column[column]} and {fld}; a column feeds one field"
            )
        by_column[column] = fld

    # Metadata policy: the command line replaces the file's [metadata] section.
    cli_metadata = not options.extra_metadata or options.metadata_columns is not None
    extra, meta_names = options.extra_metadata, options.metadata_columns
    include_personal = options.personal_data == "include"
    if file is not None and options.personal_data == "exclude" and file["metadata"]["personal_data"]:
        include_personal = file["metadata"]["personal_data"] == "include"
    meta_flag = "--metadata-columns"
    if file is not None and not cli_metadata:
        if file["metadata"]["extra"] is not None:
            extra = file["metadata"]["extra"]
        meta_names = file["metadata"]["columns"]
        meta_flag = f"{file_where}: metadata.columns"
    meta_columns: tuple[str, ...] | None = None
    if meta_names is not None:
        resolved = []
        for name in meta_names:
            column = _resolve_column(name, headers)
            if column is None:
                error = UsageError if meta_flag == "--metadata-columns" else ConfigError
                raise error(_no_column(meta_flag, name, headers))
            if column in by_column:
                error = UsageError if meta_flag == "--metadata-columns" else ConfigError
                raise error(
                    f"{meta_flag}: column '{column}' already feeds {by_column[column]} "
                    f"({explicit[by_column[column]][1]})"
                )
            resolved.append(column)
        meta_columns = tuple(resolved)
    meta_set = set(meta_columns or ())

    # Automatic candidates.
    candidates: dict[str, list[_Candidate]] = {f: [] for f in _VALUE_FIELDS}
    emails: list[_Candidate] = []
    json_columns: list[str] = []
    for index, header in enumerate(headers):
        if header in by_column or header in meta_set:
            continue
        if _norm(header) in _META_JSON_NAMES:
            json_columns.append(header)
            continue
        if _explicit_metadata_key(header):
            continue
        match = _match_header(header)
        if match is None:
            continue
        candidate = _Candidate(header, index, match)
        if match.role.kind == "email":
            emails.append(candidate)
        else:
            candidates[match.role.field].append(candidate)

    targets: dict[str, tuple[str, str]] = {}  # column -> (target, how)
    notes: list[str] = []
    for column, fld in by_column.items():
        targets[column] = (fld, explicit[fld][1])
    if "metadata" not in explicit and json_columns:
        targets[json_columns[0]] = ("metadata", "JSON object merged into metadata")

    losers: dict[str, str] = {}
    code_from_email = False
    for fld in _VALUE_FIELDS:
        found = sorted(candidates[fld], key=_Candidate.key)
        if fld == "code" and not found and "code" not in explicit:
            found = sorted(emails, key=_Candidate.key)
            if found:
                notes.append(
                    f"code: there is no id column, so the email column '{found[0].column}' is the "
                    "customer code; a customer whose email changes becomes a new customer"
                )
        if fld in explicit:
            chosen = explicit[fld][0]
            for c in found:
                losers[c.column] = (
                    f"lost to '{chosen}' ({explicit[fld][1]})" if chosen else f"{fld} left empty ({explicit[fld][1]})"
                )
            continue
        if not found:
            continue
        winner = found[0]
        how = _how(winner.match)
        if winner.match.role.kind == "email":
            code_from_email = True
            how = "email (no id column)"
            if _norm(winner.column) != "email":
                how += f", synonym ({'/'.join(winner.match.role.langs)})"
            if winner.match.qualifiers:
                how += f", {winner.match.qualifiers}"
        targets[winner.column] = (fld, how)
        for c in found[1:]:
            losers[c.column] = f"lost to '{winner.column}' ({_lost_reason(winner, c)})"
        if len(found) > 1:
            others = ", ".join(f"'{c.column}'" for c in found[1:])
            notes.append(f"{fld}: chose '{winner.column}' over {others} ({_lost_reason(winner, found[1])})")
        if winner.match.role.kind == "inverted":
            notes.append(
                f"isActive: '{winner.column}' is read inverted: a filled cell other than "
                "no/n/0/false means the customer is inactive"
            )
        if winner.match.role.kind == "status":
            notes.append(
                f"isActive comes from '{winner.column}': its values must read active/inactive; "
                f"otherwise use --map isActive= or a value map"
            )

    if "code" not in {t for t, _ in targets.values()}:
        listed = _listed(headers)
        if "code" in explicit:
            how = explicit["code"][1]
            error = ConfigError if how == "mapping file" else UsageError
            raise error(f"{how}: code cannot be left empty; every customer needs one")
        raise InputError(
            "no column can be the customer code: none looks like an id or an email "
            f"(columns are: {listed}); name one with --map code=COLUMN"
        )

    # Everything else goes to metadata (or nowhere).
    choices: list[ColumnChoice] = []
    meta_keys: dict[str, str] = {}
    left_out: list[tuple[str, str]] = []
    for header in headers:
        if header in targets:
            target, how = targets[header]
        elif not header.strip():
            target, how = "ignored", "empty header"
        elif header in REPORT_COLUMNS:
            target, how = "ignored", "failure report column (a fixed report fed back in)"
        elif (key := _explicit_metadata_key(header)) is not None:
            target, how = f"metadata.{key}", "metadata column"
        else:
            prefix = f"{losers[header]}; " if header in losers else ""
            if header in meta_set:
                target, how = f"metadata.{header.strip()}", f"{prefix}{meta_flag}"
            elif meta_columns is not None:
                target, how = "ignored", f"{prefix}dropped (not in {meta_flag})"
            elif extra and not include_personal and (kind := personal_kind(header)) is not None:
                target, how = "ignored", f"{prefix}personal data ({kind}): kept out of metadata"
                left_out.append((header, kind))
            elif extra:
                target, how = f"metadata.{header.strip()}", f"{prefix}unmapped -> metadata"
            else:
                target, how = "ignored", f"{prefix}dropped (--no-extra-metadata)"
        if target.startswith("metadata."):
            key = target[len("metadata.") :]
            if key in meta_keys:
                notes.append(
                    f"metadata: columns '{meta_keys[key]}' and '{header}' both fill key '{key}'; "
                    "a metadata.x column wins, otherwise the rightmost"
                )
            meta_keys[key] = header
        choices.append(ColumnChoice(column=header, target=target, how=how))

    if left_out:
        listed = ", ".join(f"'{c}' ({k})" for c, k in left_out[:_LISTED_COLUMNS])
        more = f" and {len(left_out) - _LISTED_COLUMNS} more" if len(left_out) > _LISTED_COLUMNS else ""
        notes.append(
            f"personal data kept home: {listed}{more} not sent as metadata; "
            "--metadata-columns or --personal-data include sends them"
        )
    value_maps = dict(file["values"]) if file is not None else {}
    defaults = dict(file["defaults"]) if file is not None else {}
    return Mapping(
        columns=tuple(choices),
        value_maps=value_maps,
        defaults=defaults,
        notes=tuple(notes),
        extra_metadata=extra,
        metadata_columns=meta_columns,
        personal_left_out=tuple(left_out),
        include_personal=include_personal,
        code_from_email=code_from_email,
    )


# ---------------------------------------------------------------------------------------------
# Showing
# ---------------------------------------------------------------------------------------------


def _sample_text(value: Any, width: int = 28) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def mapping_table(mapping: Mapping, samples: Sequence[dict[str, Any]], *, max_samples: int = 3) -> Table:
    """A table of every column with its field, how it was matched and a few sample values."""
    if mapping.metadata_columns is not None:
        policy = "only " + ", ".join(mapping.metadata_columns) + " go to metadata"
    elif mapping.extra_metadata:
        policy = "unmapped columns go to metadata under their header"
        if not mapping.include_personal:
            policy += ", except personal data"
    else:
        policy = "unmapped columns are dropped"
    table = Table(title="Column mapping", caption=policy, title_justify="left")
    table.add_column("Column", overflow="fold")
    table.add_column("Field", overflow="fold")
    table.add_column("How matched", overflow="fold")
    table.add_column("Sample values", overflow="fold")
    for choice in mapping.columns:
        seen: list[str] = []
        for row in samples:
            value = row.get(choice.column)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            text = _sample_text(value)
            if text not in seen:
                seen.append(text)
            if len(seen) >= max_samples:
                break
        how = choice.how
        if choice.target in mapping.value_maps:
            pairs = ", ".join(f"{k!r}->{v!r}" for k, v in mapping.value_maps[choice.target].items())
            how += f"; values: {pairs}"
        if choice.target in mapping.defaults:
            how += f"; default {mapping.defaults[choice.target]!r}"
        if choice.target in FIELDS:
            style = "bold green"
        elif choice.target.startswith("metadata"):
            style = "cyan"
        else:
            style = "dim"
        table.add_row(
            Text(choice.column),
            Text(choice.target, style=style),
            Text(how),
            Text(" | ".join(seen)),
        )
    fed = {c.target for c in mapping.columns}
    for fld in _VALUE_FIELDS:
        if fld in fed:
            continue
        if fld in mapping.defaults:
            how = f"no column; default {mapping.defaults[fld]!r} (mapping file)"
        else:
            how = "no column; not sent"
        table.add_row(Text("(none)", style="dim"), Text(fld, style="yellow"), Text(how), Text(""))
    return table
