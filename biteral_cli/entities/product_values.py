"""Value rules of product fields: prices, currencies, URLs, HTML descriptions, codes, flags.

Every function here is pure: text in, a value out, or a ``ValueProblem`` whose message says what
is wrong with the cell in words a user can act on.

Prices
------
``parse_price`` reads what shop exports and spreadsheets write: ``24,95 €``, ``€24.95``,
``1.234,50``, ``1,234.50``, ``USD 10``, ``8.610000``, ``1'234.50`` (Swiss), ``12 345,00``.

* Decimal separator: with both ``.`` and ``,`` the last one is the decimal separator; a separator
  that appears more than once groups thousands; a single separator followed by other than three
  digits is the decimal separator (``24,95``, ``8.610000``). A single separator followed by exactly
  three digits (``1.234``) is ambiguous: the column's separator seen so far decides (``decimal``),
  else a leading ``0`` means decimal (``0.500``), else the price is refused as ambiguous.
* Currency: an ISO 4217 code before or after the number (``USD 10``, ``10 eur``), or a symbol that
  names one currency only in CLDR (``€``, ``US$``, ``R$``, ``₹``, ``zł``... see ``SYMBOLS``).
  ``$``, ``£``, ``¥`` and ``kr`` name several currencies (``£`` is also the Falkland, Gibraltar,
  Saint Helena and South Sudanese pound): they need ``--currency`` or a currency column.
* The amount is sent as the API documents it: a string with ``.`` as the decimal separator, at
  least two decimals, trailing zeros beyond them dropped (``8.610000`` -> ``8.61``, ``10`` ->
  ``10.00``).
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, urlsplit, urlunsplit

import pycountry

#: The fields of ``POST /products``, in the order the API documents them (API.md, section Products);
#: the sandbox's /products returns them in this order too.
API_FIELDS = (
    "code",
    "isActive",
    "title",
    "description",
    "price",
    "attributes",
    "brand",
    "category",
    "imageUrl",
    "url",
    "metadata",
)


class ValueProblem(ValueError):
    """A cell that cannot become the field's value; the message says why."""


# -- currencies ---------------------------------------------------------------------------------

#: Symbols that name exactly one currency: in the CLDR data babel ships, no locale gives the
#: symbol to another currency (tests/test_product_values.py checks it). The few that CLDR does not
#: list (``U$S``, ``円``, ``lei``, ``лв``) are written so by shops of one currency only.
SYMBOLS: dict[str, str] = {
    "€": "EUR",
    "US$": "USD",
    "U$S": "USD",
    "CA$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "R$": "BRL",
    "MX$": "MXN",
    "HK$": "HKD",
    "S$": "SGD",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "₫": "VND",
    "฿": "THB",
    "₱": "PHP",
    "₴": "UAH",
    "₦": "NGN",
    "R": "ZAR",
    "円": "JPY",
    "zł": "PLN",
    "Kč": "CZK",
    "Ft": "HUF",
    "lei": "RON",
    "лв": "BGN",
}

#: Symbols that several currencies use: a price written with one needs --currency or a column.
AMBIGUOUS_SYMBOLS: dict[str, str] = {
    "$": "USD, CAD, AUD, MXN, ARS, CLP, COP...",
    "£": "GBP, FKP, GIP, SHP or SSP",
    "C$": "CAD or NIO",
    "¥": "JPY or CNY",
    "￥": "JPY or CNY",
    "kr": "SEK, NOK, DKK or ISK",
    "Fr.": "CHF, XOF or XAF",  # not in CLDR; written so for Swiss and CFA francs alike
}


def currency_code(text: str) -> str | None:
    """The ISO 4217 code ``text`` is (any case, spaces trimmed), or None when it is none."""
    code = text.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        return None
    return code if pycountry.currencies.get(alpha_3=code) is not None else None


# -- prices ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    """A price as the API takes it, plus the decimal separator the text showed (None: no clue)."""

    amount: Decimal
    currency: str | None
    decimal: str | None = None

    def payload(self) -> dict[str, str]:
        """``{"amount": "24.95", "currency": "EUR"}``; only for a price with a currency."""
        assert self.currency is not None
        return {"amount": format_amount(self.amount), "currency": self.currency}


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")  # NBSP, narrow NBSP, thin space, Swiss apostrophe
_NUMBER = re.compile(r"[+-]?[0-9][0-9.,\s\u00a0\u202f\u2009']*|[+-]?[.,][0-9]+")
_SYMBOLS_LONGEST = sorted({**SYMBOLS, **AMBIGUOUS_SYMBOLS}, key=len, reverse=True)


def format_amount(amount: Decimal) -> str:
    """``amount`` with ``.`` as separator, at least two decimals, no trailing zeros beyond them."""
    text = format(amount.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _currency_of(rest: str, original: str, given: str | None) -> str | None:
    """The currency named by the text around a price's number, or None when there is none; an
    ambiguous symbol (``$``) means the ``given`` currency (--currency or a column), if any."""
    rest = rest.strip().strip(".").strip()
    if not rest:
        return None
    code = currency_code(rest)
    if code is not None:
        return code
    if rest in SYMBOLS:
        return SYMBOLS[rest]
    for symbol in _SYMBOLS_LONGEST:
        if rest.casefold() == symbol.casefold() and symbol in AMBIGUOUS_SYMBOLS:
            if given is not None:
                return given
            raise ValueProblem(
                f"price {original!r}: the symbol {symbol!r} is used by several currencies "
                f"({AMBIGUOUS_SYMBOLS[symbol]}); pass --currency CODE or add a currency column"
            )
        if rest.casefold() == symbol.casefold():
            return SYMBOLS[symbol]
    raise ValueProblem(f"price {original!r}: {rest!r} is not a currency code (ISO 4217) or symbol")


def _amount(number: str, original: str, decimal: str | None) -> tuple[Decimal, str | None]:
    """The amount of a price's number part, and the decimal separator it showed (None: no clue)."""
    digits = _SPACES.sub("", number)
    dots, commas = digits.count("."), digits.count(",")
    seen: str | None = None
    if dots and commas:
        seen = "." if digits.rfind(".") > digits.rfind(",") else ","
        thousands = "," if seen == "." else "."
        if digits.count(seen) > 1 or digits.rfind(thousands) > digits.rfind(seen):
            raise ValueProblem(f"price {original!r}: its separators do not make one number")
        text = digits.replace(thousands, "").replace(seen, ".")
    elif dots + commas == 0:
        text = digits
    else:
        sep = "." if dots else ","
        whole, _, frac = digits.rpartition(sep)
        if dots + commas > 1:  # 1.234.567: thousands only
            text = digits.replace(sep, "")
        elif len(frac) != 3:
            seen, text = sep, f"{whole}.{frac}"
        elif decimal is not None:
            text = f"{whole}.{frac}" if decimal == sep else whole + frac
        elif whole.lstrip("+-") in ("", "0"):
            seen, text = sep, f"{whole}.{frac}"
        else:
            raise ValueProblem(
                f"price {original!r} is ambiguous: {whole}{frac} or {whole}.{frac}? Write it with two "
                "decimals (1.234,00 or 1,234.00)"
            )
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueProblem(f"price {original!r} is not a number") from None
    if not amount.is_finite():
        raise ValueProblem(f"price {original!r} is not a number")
    if amount < 0:
        raise ValueProblem(f"price {original!r} is negative")
    return amount, seen


@functools.lru_cache(maxsize=65536)
def parse_price(text: str, decimal: str | None = None, currency: str | None = None) -> Price:
    """Read one price cell: its amount, the currency it names (or None) and its decimal separator.

    ``decimal`` is the separator the column has shown so far, which settles ``1.234``;
    ``currency`` (from --currency or a currency column) is what an ambiguous ``$`` means.
    """
    original = text
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise ValueProblem("price is empty")
    match = _NUMBER.search(text)
    if match is None:
        raise ValueProblem(f"price {original!r} has no number")
    number = match.group().rstrip(" .,\u00a0\u202f\u2009'")
    trailing = match.group()[len(number) :]
    before, after = text[: match.start()], trailing + text[match.end() :]
    if before.strip() and after.strip():
        raise ValueProblem(f"price {original!r} has text on both sides of its number")
    written = _currency_of(before or after, original, currency)
    amount, seen = _amount(number, original, decimal)
    return Price(amount, written, seen)


# -- text, URLs, codes ---------------------------------------------------------------------------

_BLOCK_TAGS = "p|div|br|ul|ol|h[1-6]|tr|table|section|article|blockquote|pre|hr|dd|dt|header|footer|figure|figcaption"
_SKIPPED = re.compile(r"<(script|style|head|title|template)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_BLOCK = re.compile(rf"</?(?:{_BLOCK_TAGS})\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_LOOKS_HTML = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


def html_to_text(text: str) -> str:
    """Plain text of an HTML description: tags dropped, blocks and list items on their own lines,
    entities decoded, spaces collapsed; text that holds no HTML is only trimmed."""
    if not _LOOKS_HTML.search(text):
        return text.strip()
    # Regular expressions rather than html.parser: five times faster on a catalog's descriptions,
    # and a description needs only its words and line breaks.
    text = _SKIPPED.sub("", text)
    text = _LIST_ITEM.sub("\n- ", text)
    text = _TAG.sub("", _BLOCK.sub("\n", text))
    lines = (" ".join(line.split()) for line in html.unescape(text).split("\n"))
    return "\n".join(line for line in lines if line and line != "-")


_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9/%:@!$&'()*+,;=._~-]*)?(\?[A-Za-z0-9=&%/:@!$'()*+,;._~?-]*)?"
)


def check_url(text: str) -> str:
    """An absolute http(s) URL from a cell (``//host/x`` gets ``https:``, spaces are escaped)."""
    url = text.strip()
    if _PLAIN_URL.fullmatch(url):  # the usual case: nothing to add or escape
        return url
    if url.startswith("//"):
        url = "https:" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueProblem(f"{text!r} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in parts.netloc:
        raise ValueProblem(f"{text!r} is not an absolute http(s) URL")
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="=&%/:@!$'()*+,;-._~?")
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, query, parts.fragment))


MAX_CODE = 255
_NOT_WORD = re.compile(r"[^\w]+")


@functools.lru_cache(maxsize=65536)
def slug(text: str) -> str:
    """A stable code for a name: lowercase words joined by ``-`` (letters of any script kept, accents
    dropped); longer than 255 characters, cut and ended with 12 hex digits of its sha1."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    code = _NOT_WORD.sub("-", folded.replace("_", "-")).strip("-")
    if len(code) > MAX_CODE:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        code = code[: MAX_CODE - 13].rstrip("-") + "-" + digest
    return code


def category_path(text: str) -> list[str]:
    """The segments of a category path written ``A > B > C`` (or with ``/`` or ``|``)."""
    for sep in (">", "|", "/"):
        if sep in text:
            return [part.strip() for part in text.split(sep) if part.strip()]
    return [text.strip()] if text.strip() else []


#: Words meaning active / inactive in the flags of shop exports (Shopify Status and Published,
#: WooCommerce Published 1/0/-1, generic active columns in six languages).
_TRUE = frozenset(
    [
        "true",
        "1",
        "yes",
        "y",
        "si",
        "sí",
        "sim",
        "oui",
        "ja",
        "vero",
        "active",
        "activo",
        "activa",
        "ativo",
        "actif",
        "aktiv",
        "attivo",
        "published",
        "publish",
        "publicado",
        "visible",
        "enabled",
        "on",
    ]
)
_FALSE = frozenset(
    [
        "false",
        "0",
        "-1",
        "no",
        "n",
        "non",
        "nein",
        "nao",
        "não",
        "falso",
        "falsch",
        "draft",
        "archived",
        "inactive",
        "inactivo",
        "inactiva",
        "inativo",
        "inactif",
        "inaktiv",
        "inattivo",
        "private",
        "pending",
        "trash",
        "hidden",
        "disabled",
        "off",
        "unpublished",
        "borrador",
    ]
)


def parse_flag(text: str) -> bool:
    """True or False from a status or yes/no cell; ValueProblem for anything else."""
    word = text.strip().casefold()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueProblem(f"{text!r} is not a status this tool knows (active/draft, true/false, 1/0...)")
