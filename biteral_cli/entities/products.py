"""Products (``--entity products``): map a product export's columns, group its rows into products
and build the ``POST /products`` payloads.

Which exports
-------------
* **Shopify** (a ``Handle`` or ``URL handle`` column): one row per variant and per extra image,
  grouped by Handle. The code is the Handle (Shopify exports no product id; ``Variant SKU`` names
  variants, not the product). Title, description (``Body (HTML)`` as plain text), brand
  (``Vendor``) and category (``Product Category``, else ``Type``) come from the product's first
  row; the price from its variants (the lowest, or the first with ``--price-rule first``); the
  image is the first ``Image Src``; ``Option1..3 Name/Value`` become attributes ("Size": "S, M,
  L"); ``Status`` and ``Published`` make ``isActive`` (active only when both say so).
* **WooCommerce** (``Type`` and ``Parent`` columns): parent rows are products; ``variation`` rows
  join the parent their ``Parent`` cell names (``id:44`` or the parent's SKU) and give it prices
  and attribute values. The code is ``ID`` (``--map code=SKU`` chooses the SKU).
* **Anything else**: columns found by name in English, Spanish, Portuguese, French, German and
  Italian (title/nombre/titre/titel, price/precio/prix/preis, brand/marca/marque/marke...), the
  SDK's ``code, title, price_amount, price_currency, image_url`` among them; rows sharing a code
  are variants of one product.

Grouping streams: a product is sent once more than ``WINDOW`` other products have been read after
its last row (at the end of the file at the latest; a WooCommerce product that is not ``variable``
at once), so rows of one product that are not adjacent
still meet if they are at most that far apart (a warning says so; WooCommerce variations are
expected to be apart). A row arriving after its product was sent is rejected, saying to sort the
file. Memory is bounded by the window, never by the file.

Codes of brand and category
---------------------------
The API wants a ``code`` for brand and category; exports have names. The code is the name as a
slug (``Acme Outdoor`` -> ``acme-outdoor``); a category's code is the slug of its whole path
(``Apparel & Accessories > Clothing`` -> ``apparel-accessories-clothing``), its title the last
segment and its description the path as written.

Extra columns (``--extra-columns``)
-----------------------------------
Descriptive columns no field takes (Tags, Type, metafields such as ``Color (product.metafields.
shopify.color-pattern)``, any unknown column) become attributes titled by their header (``attributes``,
the default: Biteral's search uses attributes) or ``metadata`` keys (``metadata``). A product's
values of one column are joined, distinct, with ``, ``. Columns about the shop's logistics
(inventory, weights, shipping, taxes, SEO, costs, compare-at and market prices, sale dates) are
left out, and a note lists them.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..batching import SeenCodes
from ..errors import InputError, UsageError
from ..mapping import ColumnChoice, Mapping
from ..reader import ReadOptions, open_source
from ..records import REPORT_COLUMNS, Issue, Prepared, SourceRow, Stage
from . import Entity
from .product_values import (
    API_FIELDS,
    MAX_CODE,
    Price,
    ValueProblem,
    category_path,
    check_url,
    currency_code,
    html_to_text,
    parse_flag,
    parse_price,
    slug,
)

PATH = "/products"
PRICE_RULES = ("lowest", "first")
EXTRA_COLUMNS = ("attributes", "metadata")
#: Products held back, after their last row, for rows that come late (non-adjacent rows).
WINDOW = 1000
MAX_TITLE = 10000
MAX_TEXT = 60000
MAX_NAME = 255

#: The product fields a column can feed (``--map FIELD=COLUMN``).
FIELDS = ("code", "title", "description", "price", "currency", "brand", "category", "imageUrl", "url", "isActive")


@dataclass(frozen=True, kw_only=True)
class ProductOptions:
    """How products are built: --currency, --price-rule, --extra-columns, --map."""

    currency: str | None = None
    price_rule: str = "lowest"
    extra_columns: str = "attributes"
    overrides: dict[str, str] = field(default_factory=dict)
    window: int = WINDOW

    def __post_init__(self) -> None:
        if self.currency is not None and currency_code(self.currency) is None:
            raise UsageError(f"--currency takes an ISO 4217 code (EUR, USD, GBP...), not {self.currency!r}")
        if self.currency is not None:
            object.__setattr__(self, "currency", currency_code(self.currency))
        if self.price_rule not in PRICE_RULES:
            raise UsageError(f"--price-rule must be lowest or first, not {self.price_rule!r}")
        if self.extra_columns not in EXTRA_COLUMNS:
            raise UsageError(f"--extra-columns must be attributes or metadata, not {self.extra_columns!r}")
        for name in self.overrides:
            if _field_name(name) is None:
                raise UsageError(f"--map {name}=...: products have no field {name!r}; fields: {', '.join(FIELDS)}")


def _field_name(name: str) -> str | None:
    wanted = _key(name)
    aliases = {"image": "imageUrl", "active": "isActive"}
    for fld in FIELDS:
        if _key(fld) == wanted:
            return fld
    return aliases.get(wanted)


# -- headers ------------------------------------------------------------------------------------


def _key(header: str) -> str:
    """A header reduced for comparison: accents dropped, casefolded, letters and digits only."""
    text = unicodedata.normalize("NFKD", str(header))
    return "".join(c for c in text if c.isalnum() and not unicodedata.combining(c)).casefold()


# (role, preference, headers); a lower preference wins when several columns fit one role.
_SYNONYMS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("code", 0, ("code", "id", "product id", "product code", "item id", "item code", "handle", "url handle")),
    ("code", 0, ("codigo", "código producto", "codigo articulo", "referencia", "ref", "id producto")),
    (
        "code",
        0,
        ("código", "código produto", "referência"),
    ),
    ("code", 0, ("référence", "code produit", "artikelnummer", "artikel nr", "art nr", "codice", "codice articolo")),
    ("code", 1, ("sku", "reference", "variant sku", "ean", "mpn")),
    ("title", 0, ("title", "name", "product name", "product title", "item name")),
    ("title", 0, ("nombre", "nombre producto", "titulo", "título", "denominacion", "denominación", "articulo")),
    ("title", 0, ("nome", "nome produto", "nome do produto", "titre", "nom", "nom produit", "nom du produit")),
    ("title", 0, ("titel", "produktname", "bezeichnung", "artikelname", "titolo", "nome prodotto")),
    ("description", 0, ("description", "body html", "body", "long description", "product description", "details")),
    ("description", 0, ("descripcion", "descripción", "descrição", "descricao", "beschreibung", "descrizione")),
    ("description", 1, ("short description", "summary", "descripcion corta", "resumen")),
    ("price", 0, ("price", "variant price", "regular price", "price amount", "unit price", "sale price amount")),
    ("price", 0, ("precio", "pvp", "precio venta", "preço", "preco", "prix", "prix ttc", "preis", "verkaufspreis")),
    ("price", 0, ("prezzo", "prezzo vendita")),
    ("currency", 0, ("currency", "price currency", "currency code", "moneda", "divisa", "moeda", "devise")),
    ("currency", 0, ("währung", "wahrung", "waehrung", "valuta")),
    ("brand", 0, ("brand", "vendor", "manufacturer", "brand name", "marca", "fabricante", "marque", "fabricant")),
    ("brand", 0, ("marke", "hersteller", "produttore")),
    ("category", 0, ("category", "product category", "categories", "categoria", "categoría", "categorias")),
    ("category", 0, ("categorías", "catégorie", "categorie", "kategorie", "warengruppe", "categoria prodotto")),
    ("category", 1, ("product type", "familia", "family", "department", "departamento", "rubro", "rayon")),
    ("imageUrl", 0, ("image", "image src", "image url", "images", "product image url", "main image", "picture")),
    ("imageUrl", 0, ("photo", "imagen", "url imagen", "foto", "imagem", "bild", "bild url", "immagine")),
    ("imageUrl", 1, ("thumbnail", "image link")),
    ("url", 0, ("url", "link", "product url", "permalink", "enlace", "url producto", "lien", "produkt url")),
    ("url", 1, ("external url", "product link", "web")),
    ("isActive", 0, ("isactive", "active", "enabled", "status", "published", "published on online store")),
    ("isActive", 0, ("activo", "activa", "estado", "publicado", "ativo", "actif", "aktiv", "attivo", "visible")),
)
_ROLES: dict[str, tuple[str, int]] = {}
for _role, _pref, _headers in _SYNONYMS:
    for _header in _headers:
        _ROLES.setdefault(_key(_header), (_role, _pref))

#: Field -> the ``ProductBuilder`` method that builds it from a product's rows.
RULES: dict[str, str] = {
    "code": "build",
    "isActive": "_active",
    "title": "_first",
    "description": "_first",
    "price": "_price",
    "attributes": "_attributes",
    "brand": "_first",
    "category": "_category",
    "imageUrl": "_url",
    "url": "_url",
    "metadata": "_attributes",
}
PRODUCTS = Entity(
    name="products",
    path=PATH,
    # As the API documents them; a payload's fields are written in the order ``build`` works them out.
    fields=API_FIELDS,
    key="code",
    # The product tables mix languages in one row and have no kinds: every column name is plain.
    synonyms=tuple((role, "plain", pref, "any", headers) for role, pref, headers in _SYNONYMS),
    rules=RULES,
)

#: Headers that name the shop's logistics, not the product: never sent (a note lists them).
_LOGISTICS = frozenset(
    _key(h)
    for h in (
        # Shopify (classic and current names)
        "Variant Grams",
        "Variant Inventory Tracker",
        "Variant Inventory Qty",
        "Variant Inventory Policy",
        "Variant Fulfillment Service",
        "Variant Compare At Price",
        "Variant Requires Shipping",
        "Variant Taxable",
        "Variant Barcode",
        "Variant Image",
        "Variant Weight Unit",
        "Variant Tax Code",
        "Image Position",
        "Image Alt Text",
        "Gift Card",
        "SEO Title",
        "SEO Description",
        "Cost per item",
        "Compare-at price",
        "Weight value (grams)",
        "Weight unit for display",
        "Requires shipping",
        "Fulfillment service",
        "Inventory tracker",
        "Inventory quantity",
        "Inventory policy",
        "Continue selling when out of stock",
        "Charge tax",
        "Tax code",
        "Barcode",
        "Variant image URL",
        "Option1 Linked To",
        "Option2 Linked To",
        "Option3 Linked To",
        "Unit Price Total Measure",
        "Unit Price Total Measure Unit",
        "Unit Price Base Measure",
        "Unit Price Base Measure Unit",
        "Variant SKU",
        # WooCommerce
        "Is featured?",
        "Visibility in catalog",
        "Date sale price starts",
        "Date sale price ends",
        "Tax status",
        "Tax class",
        "In stock?",
        "Stock",
        "Low stock amount",
        "Backorders allowed?",
        "Sold individually?",
        "Allow customer reviews?",
        "Purchase note",
        "Sale price",
        "Shipping class",
        "Download limit",
        "Download expiry days",
        "Grouped products",
        "Upsells",
        "Cross-sells",
        "Button text",
        "Position",
    )
)
_LOGISTICS_PATTERNS = (
    re.compile(r"^(weight|length|width|height)\b.*$", re.IGNORECASE),
    re.compile(r"^(price|compare[- ]at price|included) / .+$", re.IGNORECASE),
    re.compile(r"^google shopping\b.*$", re.IGNORECASE),
    re.compile(r"^attribute \d+ (visible|global|default)$", re.IGNORECASE),
    re.compile(r"^download \d+ (id|name|url)$", re.IGNORECASE),
    re.compile(r"^meta:\s*_.*$", re.IGNORECASE),  # WordPress' private post meta
)
_OPTION = re.compile(r"^\s*option\s*([1-3])\s*(name|value)\s*$", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"^\s*attribute\s*(\d+)\s*(name|value\(s\)|values?)\s*$", re.IGNORECASE)
_METAFIELD = re.compile(r"^\s*(?P<title>.+?)\s*\((?:product|variant)\.metafields\.[^)]*\)\s*$")


def _is_logistics(header: str) -> bool:
    return _key(header) in _LOGISTICS or any(p.match(header.strip()) for p in _LOGISTICS_PATTERNS)


# -- the mapping ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProductPlan:
    """Which column feeds each product field, and what the other columns become."""

    format: str  # shopify | woocommerce | generic
    columns: dict[str, str]  # role -> header; roles: FIELDS plus kind, parent, sku, type
    options: tuple[tuple[str, str], ...] = ()  # (name column, value column) pairs
    flags: tuple[str, ...] = ()  # every column that says whether the product is active
    extras: tuple[tuple[str, str], ...] = ()  # (column, attribute title or metadata key)
    left_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ProductMapping(Mapping):
    """A Mapping whose columns feed product fields; ``plan`` is what the product builder reads."""

    plan: ProductPlan


def detect_format(headers: Sequence[str]) -> str:
    """``shopify``, ``woocommerce`` or ``generic``, from the columns only Shopify or WooCommerce write."""
    keys = {_key(h) for h in headers}
    if keys & {"handle", "urlhandle"} and keys & {"variantprice", "option1name", "bodyhtml", "vendor", "price"}:
        return "shopify"
    if {"type", "parent"} <= keys and keys & {"regularprice", "attribute1name", "sku"}:
        return "woocommerce"
    return "generic"


#: Columns whose role depends on the export (``Type`` is the product kind in WooCommerce).
_FORMAT_ROLES: dict[str, dict[str, tuple[str, int]]] = {
    "shopify": {"type": ("type", 0), "sku": ("drop", 0), "variantsku": ("drop", 0)},
    "woocommerce": {"type": ("kind", 0), "parent": ("parent", 0), "sku": ("sku", 0), "saleprice": ("drop", 0)},
    "generic": {},
}


def build_product_mapping(headers: Sequence[str], options: ProductOptions) -> ProductMapping:
    """Choose the column of every product field (``--map`` first), pair option/attribute columns and
    sort the rest into extras and left-out columns; InputError when no column can be the code."""
    fmt = detect_format(headers)
    special = _FORMAT_ROLES[fmt]
    ignored = {_key(c) for c in REPORT_COLUMNS}
    overrides = {_field_name(k) or k: v for k, v in options.overrides.items()}
    for fld, column in overrides.items():
        if column and column not in headers:
            raise InputError(f"--map {fld}={column}: the input has no column {column!r}")
    chosen: dict[str, tuple[int, int, str]] = {}  # role -> (pref, position, header)
    pairs: dict[tuple[str, str], dict[str, str]] = {}
    rest: list[str] = []
    flags: list[str] = []
    taken = {c for c in overrides.values() if c}
    for position, header in enumerate(headers):
        key = _key(header)
        if key in ignored or header in taken:
            continue
        pair = _OPTION.match(header) or _ATTRIBUTE.match(header)
        if pair:
            kind = "name" if pair.group(2).lower() == "name" else "value"
            pairs.setdefault((header[:3].lower(), pair.group(1)), {})[kind] = header
            continue
        role, pref = special.get(key) or _ROLES.get(key, ("", 0))
        if role == "isActive" and "isActive" not in overrides:
            flags.append(header)
        if role == "drop" or (not role and _is_logistics(header)):
            rest.append(header)
            continue
        if not role or role in overrides:
            rest.append(header)
            continue
        loser: str | None
        if role in chosen and chosen[role][:2] <= (pref, position):
            loser = header
        else:
            loser = chosen[role][2] if role in chosen else None
            chosen[role] = (pref, position, header)
        if loser is not None and role == "description" and "shortdescription" not in chosen:
            # WooCommerce's Short description stands in for an empty Description.
            chosen["shortdescription"] = (0, position, loser)
        elif loser is not None:
            rest.append(loser)
    columns = {role: header for role, (_, _, header) in chosen.items()}
    columns.update({fld: col for fld, col in overrides.items() if col})
    for fld, col in overrides.items():
        if not col:
            columns.pop(fld, None)
    if "code" not in columns and fmt == "woocommerce" and "sku" in columns:
        columns["code"] = columns["sku"]
    if "code" not in columns:
        raise InputError(
            "no column can be the product code (looked for code, id, handle, sku, referencia, "
            "référence, artikelnummer...); name it with --map code=COLUMN"
        )
    notes = [f"products: read as a {fmt} export; the product code is column {columns['code']!r}"]
    if fmt == "woocommerce" and _key(columns["code"]) == "id":
        notes[0] += " (WooCommerce's product id; --map code=SKU to use the SKU)"
    left_out = tuple(h for h in rest if _is_logistics(h) or special.get(_key(h), ("",))[0] == "drop")
    extras = []
    for header in rest:
        if header in left_out or header in flags or (_key(header) in {_key(c) for c in columns.values()}):
            continue
        meta = _METAFIELD.match(header)
        extras.append((header, meta.group("title") if meta else header.strip()))
    if fmt == "shopify" and "type" in columns:
        extras.append((columns["type"], columns["type"].strip()))
    if left_out:
        notes.append(f"products: columns about stock, shipping, taxes or SEO are not sent: {', '.join(left_out)}")
    option_pairs = tuple(
        (pair["name"], pair["value"]) for _, pair in sorted(pairs.items()) if "name" in pair and "value" in pair
    )
    if "isActive" in overrides:
        flags = [columns["isActive"]] if "isActive" in columns else []
    plan = ProductPlan(
        format=fmt,
        columns=columns,
        options=option_pairs,
        flags=tuple(flags),
        extras=tuple(extras),
        left_out=left_out,
        notes=tuple(notes),
    )
    choices = [
        ColumnChoice(col, role, "products: " + ("--map" if role in overrides else "by name"))
        for role, col in columns.items()
    ]
    choices += [ColumnChoice(n, "attributes", "option name") for n, _ in option_pairs]
    choices += [ColumnChoice(v, "attributes", "option values") for _, v in option_pairs]
    choices += [ColumnChoice(c, options.extra_columns, "extra column") for c, _ in extras]
    choices += [ColumnChoice(c, "(left out)", "stock, shipping, taxes or SEO") for c in left_out]
    return ProductMapping(columns=tuple(choices), notes=tuple(notes), plan=plan)


def product_mapping_table(mapping: ProductMapping, samples: Sequence[dict[str, Any]]) -> Table:
    """What ``map --entity products`` shows: each column, the product field it feeds, sample values."""
    table = Table(title=f"Product columns ({mapping.plan.format} export)", title_justify="left")
    for name in ("Column", "Field", "How matched", "Sample values"):
        table.add_column(name, overflow="fold")
    for choice in mapping.columns:
        seen = list(dict.fromkeys(str(r.get(choice.column, "")).strip()[:28] for r in samples))
        style = "dim" if choice.target == "(left out)" else "bold green"
        table.add_row(
            Text(choice.column),
            Text(choice.target, style=style),
            Text(choice.how),
            Text(" | ".join(s for s in seen if s)),
        )
    for fld in FIELDS:
        if fld not in mapping.plan.columns and fld not in ("currency",):
            table.add_row(Text("(none)", style="dim"), Text(fld, style="yellow"), Text("no column; not sent"), Text(""))
    return table


def map_products(file: str, read: ReadOptions, overrides: dict[str, str], samples: int) -> None:
    """``biteral-import map FILE --entity products``: print how the columns feed product fields
    (the options table refused what products cannot take, --write-mapping among them)."""
    console = Console()
    with open_source(file, read, stdin=sys.stdin.buffer if file == "-" else None) as source:
        try:
            mapping = build_product_mapping(source.headers, ProductOptions(overrides=overrides))
        except InputError as exc:
            raise InputError(f"{exc}{source.hint()}") from exc
        rows = [row.cells for row in itertools.islice(source.rows(), samples) if row.error is None]
    console.print(product_mapping_table(mapping, rows))
    for note in (*source.notes, *mapping.notes):
        console.print(f"[yellow]note:[/] {note}", highlight=False)


# -- grouping and building -----------------------------------------------------------------------


@dataclass(slots=True)
class ProductResult(Prepared):
    """One product built from its rows (``row`` is the first): a payload, or why it is rejected."""

    rows: list[SourceRow] = field(default_factory=list)


def _result(rows: list[SourceRow], *errors: Issue, stage: Stage = "validate") -> ProductResult:
    return ProductResult(rows[0], None, errors=list(errors), stage=stage, rows=rows)


@dataclass(slots=True)
class _Group:
    names: list[str]
    rows: list[SourceRow] = field(default_factory=list)
    main: list[SourceRow] = field(default_factory=list)  # product-level rows (not variations)
    warnings: list[Issue] = field(default_factory=list)


def _cell(row: SourceRow, column: str | None) -> str:
    value = row.cells.get(column, "") if column is not None else ""
    if value.__class__ is str:  # every CSV cell: the fast path, called ~50 times a product
        return value.strip()
    return "" if value is None else str(value)


class ProductBuilder:
    """Groups rows into products as they stream by and builds each product's payload."""

    def __init__(self, plan: ProductPlan, options: ProductOptions, notes: list[str] | None = None) -> None:
        self.plan = plan
        self.options = options
        self.col = plan.columns.get
        self.open: OrderedDict[int, _Group] = OrderedDict()
        self.index: dict[str, _Group] = {}
        self.sent = SeenCodes()
        self.notes = notes if notes is not None else []
        self.decimal: str | None = None  # the price column's decimal separator, once a price shows it
        self._noted_apart = False
        self._last: _Group | None = None

    # -- grouping ------------------------------------------------------------------------------
    def _keys(self, row: SourceRow) -> tuple[str | None, list[str]]:
        """The key that links a row to its product, and the names the row's product is known by."""
        code = _cell(row, self.col("code"))
        if self.plan.format != "woocommerce":
            if not code and self.plan.format == "shopify" and self._last is not None:
                return self._last.names[0], []  # a continuation row with the Handle left blank
            return (f"code:{code}" if code else None), ([f"code:{code}"] if code else [])
        names = [f"id:{v}" for v in [_cell(row, self.col("code"))] if v]
        sku = _cell(row, self.col("sku"))
        if sku:
            names.append(f"sku:{sku}")
        if "variation" in _cell(row, self.col("kind")).lower():
            parent = _cell(row, self.col("parent"))
            if parent.lower().startswith("id:"):
                return f"id:{parent[3:].strip()}", []
            return (f"sku:{parent}" if parent else None), []
        return (names[0] if names else None), names

    def feed(self, rows: Iterable[SourceRow]) -> Iterator[ProductResult]:
        """Products in the order their groups close; every row ends in exactly one result."""
        for row in rows:
            if row.error is not None:
                yield _result([row], Issue("", row.error), stage="read")
                continue
            link, names = self._keys(row)
            if link is None:
                column = self.col("code") or "code"
                if self.plan.format == "woocommerce" and "variation" in _cell(row, self.col("kind")).lower():
                    column = self.col("parent") or "Parent"  # a variation is found by its parent
                yield _result([row], Issue("code", f"column {column!r} is empty"))
                continue
            group = next((self.index[k] for k in (link, *names) if k in self.index), None)
            if group is None and any(k in self.sent for k in (link, *names)):
                message = (
                    f"product {link.split(':', 1)[1]!r} was already sent when this row came: its rows are more "
                    f"than {self.options.window:,} products apart; sort the export by product code"
                )
                yield _result([row], Issue("code", message))
                continue
            if group is None:
                group = _Group(names=names or [link])
                self.index[link] = group
            elif group is not self._last and self.plan.format != "woocommerce":
                self._apart(group, row)
            for name in names:
                self.index.setdefault(name, group)
                if name not in group.names:
                    group.names.append(name)
            group.rows.append(row)
            if link in names or self.plan.format != "woocommerce":
                group.main.append(row)
            if self._complete(row, link, names):
                self.open.pop(id(group), None)
                yield self._close(group)
                continue
            self.open[id(group)] = group
            self.open.move_to_end(id(group))
            self._last = group
            while len(self.open) > self.options.window:
                yield self._close(self.open.popitem(last=False)[1])
        while self.open:
            yield self._close(self.open.popitem(last=False)[1])

    def _complete(self, row: SourceRow, link: str, names: list[str]) -> bool:
        """Whether this row completes its product at once: a WooCommerce parent that is not
        ``variable`` (simple, grouped, external) never gets variation rows, so it is not held in
        the window, which then reaches as far as the variable products need."""
        if self.plan.format != "woocommerce" or link not in names:
            return False
        kind = _cell(row, self.col("kind")).lower()
        return bool(kind) and "variable" not in kind

    def _apart(self, group: _Group, row: SourceRow) -> None:
        name = group.names[0].split(":", 1)[1]
        message = (
            f"rows of product {name!r} are not adjacent (row {group.rows[-1].row} and row {row.row}); "
            f"joined because they are within {self.options.window:,} products"
        )
        group.warnings.append(Issue("code", message))
        if not self._noted_apart:
            self._noted_apart = True
            self.notes.append(
                f"products: {message}; rows further apart than that would be rejected: sort the export by product code"
            )

    def _close(self, group: _Group) -> ProductResult:
        for name in group.names:
            self.index.pop(name, None)
            self.sent.add(name)
        if group is self._last:
            self._last = None
        return self.build(group)

    # -- building ------------------------------------------------------------------------------
    def _first(self, group: _Group, role: str, result: ProductResult, label: str) -> tuple[str, SourceRow | None]:
        """The first non-empty value of ``role`` among the product's own rows; a warning names both
        rows when a later row disagrees."""
        column = self.col(role)
        found, where = "", None
        for row in group.main:
            value = _cell(row, column)
            if not value:
                continue
            if where is None:
                found, where = value, row
            elif value != found:
                result.warnings.append(
                    Issue(
                        role,
                        f"two {label}s for product {result.code!r}: row {where.row} {_short(found)!r} and "
                        f"row {row.row} {_short(value)!r}; the first is sent",
                    )
                )
                break
        return found, where

    def build(self, group: _Group) -> ProductResult:
        """The payload of one product (or why it is rejected), from all its rows."""
        result = _result(group.rows)
        result.warnings.extend(group.warnings)
        if not group.main:
            parent = group.names[0].split(":", 1)[1]
            result.errors.append(
                Issue(
                    "parent",
                    f"variation rows whose parent {parent!r} is not in the file (or more than "
                    f"{self.options.window:,} products away)",
                )
            )
            return result
        code = _cell(group.main[0], self.col("code")) or _cell(group.main[0], self.col("sku"))
        result.code = code
        payload: dict[str, Any] = {"code": code}
        if len(code) > MAX_CODE:
            result.errors.append(Issue("code", f"code has {len(code)} characters, at most {MAX_CODE} allowed"))
        title, _ = self._first(group, "title", result, "title")
        if not title:
            result.errors.append(
                Issue("title", f"no title: the {self.col('title') or 'title'} column is empty or missing")
            )
        elif len(title) > MAX_TITLE:
            result.errors.append(Issue("title", f"title has {len(title)} characters, at most {MAX_TITLE} allowed"))
        else:
            payload["title"] = title
        active = self._active(group, result)
        if active is not None:
            payload["isActive"] = active
        description, _ = self._first(group, "description", result, "description")
        if not description:
            description, _ = self._first(group, "shortdescription", result, "short description")
        if description:
            payload["description"] = _cut(html_to_text(description), MAX_TEXT, "description", result)
        price = self._price(group, result)
        if price is not None:
            payload["price"] = price
        brand, _ = self._first(group, "brand", result, "brand")
        if brand:
            payload["brand"] = {"code": slug(brand) or brand[:MAX_CODE], "name": _cut(brand, MAX_NAME, "brand", result)}
        category = self._category(group, result)
        if category is not None:
            payload["category"] = category
        for role, name in (("imageUrl", "imageUrl"), ("url", "url")):
            url = self._url(group, role, result)
            if url:
                payload[name] = url
        attributes, metadata = self._attributes(group, result)
        if attributes:
            payload["attributes"] = attributes
        if metadata:
            size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")))
            if size > MAX_TEXT:
                result.errors.append(Issue("metadata", f"metadata has {size} characters of JSON, at most {MAX_TEXT}"))
            payload["metadata"] = metadata
        if not result.errors:
            result.payload = payload
        return result

    def _active(self, group: _Group, result: ProductResult) -> bool | None:
        verdicts = []
        for name in self.plan.flags:
            value = _cell(group.main[0], name)
            if not value:
                continue
            try:
                verdicts.append(parse_flag(value))
            except ValueProblem as exc:
                result.warnings.append(Issue("isActive", f"column {name!r}: {exc}; isActive not sent"))
                return None
        return all(verdicts) if verdicts else None

    def _price(self, group: _Group, result: ProductResult) -> dict[str, str] | None:
        column = self.col("price")
        if column is None:
            return None
        currency_column = self.col("currency")
        prices: list[tuple[Price, SourceRow]] = []
        for row in group.rows:
            text = _cell(row, column)
            if not text:
                continue
            given = self.options.currency
            written = _cell(row, currency_column)
            if written:
                given = currency_code(written)
                if given is None:
                    result.errors.append(Issue("price", f"row {row.row}: {written!r} is not an ISO 4217 currency code"))
                    return None
            try:
                price = parse_price(text, self.decimal, given)
            except ValueProblem as exc:
                result.errors.append(Issue("price", f"row {row.row}: {exc}"))
                return None
            if price.decimal is not None:
                self.decimal = price.decimal
            if price.currency is None:
                price = Price(price.amount, given, price.decimal)
            prices.append((price, row))
        if not prices:
            return None
        chosen, row = prices[0] if self.options.price_rule == "first" else min(prices, key=lambda p: p[0].amount)
        if chosen.currency is None:
            result.errors.append(
                Issue(
                    "price",
                    f"price {_cell(row, column)!r} has no currency: pass --currency EUR (the shop's currency code) "
                    "or add a currency column",
                )
            )
            return None
        others = {p.currency for p, _ in prices} - {chosen.currency}
        if others:
            result.warnings.append(
                Issue(
                    "price",
                    f"variants of product {result.code!r} are priced in several currencies "
                    f"({', '.join(sorted(c for c in others if c))} and {chosen.currency}); {chosen.currency} is sent",
                )
            )
        return chosen.payload()

    def _category(self, group: _Group, result: ProductResult) -> dict[str, str] | None:
        text, _ = self._first(group, "category", result, "category")
        if not text and self.plan.format == "shopify":
            text, _ = self._first(group, "type", result, "type")
        if not text:
            return None
        if self.plan.format == "woocommerce":
            text = re.split(r"(?<!\\),", text)[0].replace("\\,", ",").strip()
        path = category_path(text)
        if not path:
            return None
        category = {
            "code": slug(" / ".join(path)) or text[:MAX_CODE],
            "title": _cut(path[-1], MAX_NAME, "category", result),
        }
        if len(path) > 1:
            category["description"] = " > ".join(path)
        return category

    def _url(self, group: _Group, role: str, result: ProductResult) -> str | None:
        column = self.col(role)
        if column is None:
            return None
        for row in [*group.main, *[r for r in group.rows if r not in group.main]]:
            value = _cell(row, column)
            if not value:
                continue
            if self.plan.format == "woocommerce" and role == "imageUrl":
                value = value.split(",")[0].strip()
            try:
                return check_url(value)
            except ValueProblem as exc:
                result.warnings.append(Issue(role, f"row {row.row}: {exc}; {role} not sent"))
                return None
        return None

    def _attributes(self, group: _Group, result: ProductResult) -> tuple[list[dict[str, str]], dict[str, str]]:
        values: dict[str, list[str]] = {}
        titles: dict[str, str] = {}

        def add(title: str, value: str, split: bool) -> None:
            if not title or not value or (title.lower() == "title" and value.lower() == "default title"):
                return
            key = title.casefold()
            titles.setdefault(key, title)
            bucket = values.setdefault(key, [])
            for part in (p.strip() for p in re.split(r"(?<!\\),", value)) if split else [value]:
                part = part.replace("\\,", ",")
                if part and part not in bucket:
                    bucket.append(part)

        woo = self.plan.format == "woocommerce"
        for name_column, value_column in self.plan.options:
            name = ""
            for row in group.rows:
                name = _cell(row, name_column) or name
                add(name, _cell(row, value_column), split=woo)
        extras: dict[str, list[str]] = {}
        extra_titles: dict[str, str] = {}
        for column, title in self.plan.extras:
            for row in group.main:
                value = _cell(row, column)
                if value:
                    key = title.casefold()
                    extra_titles.setdefault(key, title)
                    bucket = extras.setdefault(key, [])
                    if value not in bucket:
                        bucket.append(value)
        metadata: dict[str, str] = {}
        if self.options.extra_columns == "metadata":
            metadata = {extra_titles[k]: ", ".join(v) for k, v in extras.items()}
        else:
            for key, bucket in extras.items():
                if key not in values:
                    titles[key] = extra_titles[key]
                    values[key] = bucket
        attributes = []
        for key, bucket in values.items():
            title = titles[key]
            if len(title) > MAX_NAME:
                result.warnings.append(
                    Issue("attributes", f"attribute title {_short(title)!r} is longer than 255; not sent")
                )
                continue
            attributes.append(
                {"title": title, "value": _cut(", ".join(bucket), MAX_TEXT, f"attribute {title}", result)}
            )
        return attributes, metadata


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _cut(text: str, limit: int, what: str, result: ProductResult) -> str:
    if len(text) <= limit:
        return text
    result.warnings.append(Issue(what, f"{what} has {len(text)} characters; cut to the {limit} the API allows"))
    return text[:limit]
