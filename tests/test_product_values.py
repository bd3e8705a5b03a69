"""Product value rules (issue 14): prices as shops write them, currencies, URLs, HTML, codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biteral_cli.entities.product_values import (
    AMBIGUOUS_SYMBOLS,
    SYMBOLS,
    ValueProblem,
    check_url,
    currency_code,
    format_amount,
    html_to_text,
    parse_flag,
    parse_price,
    slug,
)


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("24,95 €", "24.95", "EUR"),
        ("€24.95", "24.95", "EUR"),
        ("1.234,50", "1234.50", None),
        ("1,234.50", "1234.50", None),
        ("USD 10", "10.00", "USD"),
        ("8.610000", "8.61", None),
        ("1'234.50 CHF", "1234.50", "CHF"),
        ("12 345,00 €", "12345.00", "EUR"),
        ("R$ 1.234,56", "1234.56", "BRL"),
        ("zł 5", "5.00", "PLN"),
        ("10 eur", "10.00", "EUR"),
        ("0.500", "0.50", None),
        ("1.2345", "1.2345", None),
    ],
)
def test_prices_as_exports_write_them(text: str, amount: str, currency: str | None) -> None:
    price = parse_price(text)
    assert (format_amount(price.amount), price.currency) == (amount, currency)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("$10", "--currency"),
        ("£5", "--currency"),
        ("¥500", "--currency"),
        ("1.234", "ambiguous"),
        ("-5", "negative"),
        ("abc", "no number"),
        ("10 XYZ", "not a currency"),
        ("1.2.3,4,5", "separators"),
    ],
)
def test_prices_that_cannot_be_read_say_why(text: str, fragment: str) -> None:
    with pytest.raises(ValueProblem, match=fragment):
        parse_price(text)


def test_an_ambiguous_symbol_takes_the_given_currency_and_the_column_settles_1_234() -> None:
    assert parse_price("$10", currency="USD").currency == "USD"
    assert parse_price("1.234", decimal=",").amount == Decimal("1234")
    assert parse_price("1.234", decimal=".").amount == Decimal("1.234")


_FORMATS = st.sampled_from(["en", "es", "plain"])
_AROUND = st.sampled_from([("", ""), ("€", ""), ("", " €"), ("EUR ", ""), ("", " EUR"), ("", "")])


@given(cents=st.integers(min_value=0, max_value=10**12), style=_FORMATS, around=_AROUND)
def test_any_amount_written_in_any_common_style_reads_back(cents: int, style: str, around: tuple[str, str]) -> None:
    amount = Decimal(cents) / 100
    if style == "en":
        number = f"{amount:,.2f}"
    elif style == "es":
        number = f"{amount:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    else:
        number = f"{amount:.2f}"
    price = parse_price(f"{around[0]}{number}{around[1]}")
    assert price.amount == amount
    assert price.currency == ("EUR" if any(around) else None)
    assert format_amount(price.amount) == f"{amount:.2f}"


@given(st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=6))
def test_amounts_are_sent_with_a_dot_and_at_least_two_decimals(amount: Decimal) -> None:
    text = format_amount(amount)
    assert Decimal(text) == amount
    whole, _, frac = text.partition(".")
    assert whole.isdigit() and len(frac) >= 2 and (len(frac) == 2 or not frac.endswith("0"))


def test_currency_codes_are_checked_against_iso_4217() -> None:
    assert currency_code("eur") == "EUR"
    assert currency_code("XCD") == "XCD"  # ISO has it; only the API refuses it
    assert currency_code("EURO") is None
    assert currency_code("ABC") is None


@given(st.lists(st.text(alphabet="abcdefghij XYZ0123456789.,;:!?", min_size=1, max_size=20), min_size=1, max_size=6))
def test_html_descriptions_become_their_text(pieces: list[str]) -> None:
    tags = ["p", "li", "div", "h2", "strong"]
    html = "".join(f"<{tags[i % 5]}>{piece}</{tags[i % 5]}>" for i, piece in enumerate(pieces))
    text = html_to_text(html)
    assert "<" not in text and ">" not in text
    words = [w for piece in pieces for w in piece.split()]
    assert text.replace("- ", "").split() == words


def test_html_entities_lists_and_scripts() -> None:
    html = "<h2>Cold</h2><ul><li>24&nbsp;h</li><li>BPA &amp; lead free</li></ul><script>x()</script>"
    assert html_to_text(html) == "Cold\n- 24 h\n- BPA & lead free"
    assert html_to_text("  5 < 6 and plain  ") == "5 < 6 and plain"


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/", min_size=0, max_size=30))
def test_absolute_http_urls_are_kept(path: str) -> None:
    url = f"https://cdn.example.com/{path}"
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("//cdn.shopify.com/a b.jpg", "https://cdn.shopify.com/a%20b.jpg"),
        ("HTTP://Example.com/x", "http://Example.com/x"),
    ],
)
def test_urls_are_made_absolute_and_escaped(text: str, expected: str) -> None:
    assert check_url(text) == expected


@pytest.mark.parametrize("text", ["/img/a.jpg", "ftp://x.com/a", "image.jpg", "https://", "javascript:alert(1)"])
def test_urls_that_are_not_absolute_http_are_refused(text: str) -> None:
    with pytest.raises(ValueProblem, match="URL"):
        check_url(text)


@given(st.text(min_size=1, max_size=600))
def test_slugs_are_stable_short_codes(name: str) -> None:
    code = slug(name)
    assert code == slug(name)
    assert len(code) <= 255
    assert code == code.casefold() and " " not in code and not code.startswith("-")


def test_slug_examples() -> None:
    assert slug("Acme Outdoor") == "acme-outdoor"
    assert slug("Apparel & Accessories / Clothing") == "apparel-accessories-clothing"
    assert slug("Calzado Niño") == "calzado-nino"


@pytest.mark.parametrize(("text", "active"), [("active", True), ("draft", False), ("TRUE", True), ("-1", False)])
def test_status_words(text: str, active: bool) -> None:
    assert parse_flag(text) is active


@pytest.mark.slow
def test_symbols_read_as_one_currency_name_only_that_currency_in_cldr() -> None:
    from babel import Locale, localedata

    users: dict[str, set[str]] = {}
    for name in localedata.locale_identifiers():
        for currency, symbol in Locale.parse(name).currency_symbols.items():
            users.setdefault(symbol, set()).add(currency)
    for symbol, currency in SYMBOLS.items():
        assert users.get(symbol, {currency}) == {currency}, (symbol, users.get(symbol))
    for symbol in ("$", "£", "¥", "kr", "C$"):
        assert len(users[symbol]) > 1 and symbol in AMBIGUOUS_SYMBOLS
