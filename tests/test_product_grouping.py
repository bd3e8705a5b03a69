"""Rows grouped into products as they stream by (issue 14): Shopify, WooCommerce, generic exports,
rows that are not adjacent, rows that disagree, and what each product is built from."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biteral_cli.entities.products import (
    ProductBuilder,
    ProductOptions,
    ProductResult,
    build_product_mapping,
)
from biteral_cli.errors import InputError, UsageError
from biteral_cli.records import SourceRow

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def _rows(text: str, delimiter: str = ",") -> tuple[list[str], list[SourceRow]]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    rows = [SourceRow("t.csv", n, dict(cells)) for n, cells in enumerate(reader, start=2)]
    return list(reader.fieldnames or []), rows


def build(text: str, delimiter: str = ",", **options: Any) -> list[ProductResult]:
    headers, rows = _rows(text, delimiter)
    opts = ProductOptions(**options)
    mapping = build_product_mapping(headers, opts)
    return list(ProductBuilder(mapping.plan, opts).feed(rows))


def by_code(results: list[ProductResult]) -> dict[str, ProductResult]:
    return {r.code or "": r for r in results}


def test_shopify_sample_one_product_per_handle_with_variants_and_images() -> None:
    results = by_code(build((SAMPLES / "products.csv").read_text(encoding="utf-8"), currency="EUR"))
    assert len(results) == 12
    tee = results["classic-cotton-tee"]
    assert [r.row for r in tee.rows] == [2, 3, 4, 5]  # three variants and an extra image
    payload = tee.payload
    assert payload is not None
    assert payload["title"] == "Classic Cotton T-Shirt, Unisex, 180 g/m²"
    assert payload["description"] == "Heavyweight organic cotton tee.\n- Regular fit\n- Pre-shrunk"
    assert payload["price"] == {"amount": "19.95", "currency": "EUR"}  # the lowest variant
    assert payload["brand"] == {"code": "acme-apparel", "name": "Acme Apparel"}
    assert payload["category"]["title"] == "T-Shirts"
    assert payload["imageUrl"].endswith("/classic-tee-front.jpg?v=1712345678")
    attributes = {a["title"]: a["value"] for a in payload["attributes"]}
    assert attributes["Size"] == "S, M, L"
    assert attributes["Color"] == "White"  # the metafield column, titled without its namespace
    assert "Variant Grams" not in attributes and "Cost per item" not in attributes
    assert results["leather-wallet"].payload["isActive"] is False  # type: ignore[index]  # Status draft
    assert results["wool-scarf"].payload["isActive"] is False  # type: ignore[index]  # Published FALSE
    assert results["espresso-beans-1kg"].payload["category"]["title"] == "Coffee"  # type: ignore[index]
    assert results["mystery-box"].payload is None
    assert "no title" in results["mystery-box"].errors[0].message


def test_price_rule_first_takes_the_first_variant() -> None:
    text = (SAMPLES / "products.csv").read_text(encoding="utf-8")
    shoe = by_code(build(text, currency="EUR", price_rule="first"))["trail-runner-shoe"]
    assert shoe.payload["price"]["amount"] == "94.00"  # type: ignore[index]


def test_a_product_without_currency_is_rejected_naming_the_option() -> None:
    results = build("Handle,Title,Variant Price\nmug,Mug,12.50\n")
    assert results[0].payload is None
    assert "--currency" in results[0].errors[0].message


def test_woocommerce_variations_join_their_parent_by_sku_or_id() -> None:
    text = (SAMPLES / "exports" / "products" / "woocommerce_products.csv").read_text(encoding="utf-8")
    results = by_code(build(text, currency="EUR"))
    shirt = results["101"]
    assert sorted(r.row for r in shirt.rows) == [2, 5, 6, 7]
    assert shirt.payload is not None
    assert shirt.payload["title"] == "Linen Shirt, Relaxed Fit"
    assert shirt.payload["price"] == {"amount": "54.00", "currency": "EUR"}
    attributes = {a["title"]: a["value"] for a in shirt.payload["attributes"]}
    assert attributes["Color"] == "White, Sand" and attributes["Size"] == "S, M, L"
    assert shirt.payload["category"] == {
        "code": "clothing-shirts",
        "title": "Shirts",
        "description": "Clothing > Shirts",
    }
    assert results["103"].payload["isActive"] is False  # type: ignore[index]  # Published -1 (draft)
    assert not shirt.warnings  # variations after other products are how WooCommerce exports


def test_woocommerce_short_description_stands_in_for_an_empty_description() -> None:
    text = "ID,Type,SKU,Name,Short description,Description,Regular price,Parent\n1,simple,a,A,<p>Short</p>,,5,\n"
    payload = build(text, currency="EUR")[0].payload
    assert payload is not None and payload["description"] == "Short" and "attributes" not in payload


def test_a_variation_whose_parent_never_comes_is_rejected() -> None:
    results = build("ID,Type,SKU,Name,Regular price,Parent\n7,variation,x-red,X - Red,5,ghost\n", currency="EUR")
    assert results[0].payload is None and "ghost" in results[0].errors[0].message


def test_rows_that_are_not_adjacent_are_joined_with_a_warning() -> None:
    text = "Handle,Title,Variant Price\na,Alpha,10\nb,Beta,20\na,,8\n"
    results = by_code(build(text, currency="EUR"))
    alpha = results["a"]
    assert [r.row for r in alpha.rows] == [2, 4]
    assert alpha.payload["price"]["amount"] == "8.00"  # type: ignore[index]
    assert "not adjacent (row 2 and row 4)" in alpha.warnings[0].message


def test_rows_further_apart_than_the_window_are_rejected_not_loaded() -> None:
    text = "Handle,Title,Variant Price\na,Alpha,10\nb,Beta,20\nc,Gamma,30\na,,8\n"
    results = build(text, currency="EUR", window=1)
    late = next(r for r in results if r.rows[0].row == 5)
    assert late.payload is None
    assert "already sent" in late.errors[0].message and "sort the export" in late.errors[0].message
    assert by_code([r for r in results if r.payload])["a"].payload["price"]["amount"] == "10.00"  # type: ignore[index]


def test_the_builder_holds_at_most_the_window_of_products() -> None:
    lines = "".join(f"p{i},Product {i},1\n" for i in range(50))
    headers, rows = _rows("Handle,Title,Variant Price\n" + lines)
    opts = ProductOptions(currency="EUR", window=5)
    builder = ProductBuilder(build_product_mapping(headers, opts).plan, opts)
    stream = builder.feed(rows)
    seen = [next(stream) for _ in range(10)]
    assert len(builder.open) <= 5 + 1 and [r.code for r in seen] == [f"p{i}" for i in range(10)]


def test_rows_of_one_product_that_disagree_warn_naming_both_rows() -> None:
    text = "Handle,Title,Variant Price\na,Alpha,10\na,Alpha II,12\n"
    alpha = build(text, currency="EUR")[0]
    assert alpha.payload["title"] == "Alpha"  # type: ignore[index]
    assert "row 2 'Alpha' and row 3 'Alpha II'" in alpha.warnings[0].message


def test_generic_exports_in_other_languages_and_the_sdk_shape() -> None:
    text = (SAMPLES / "exports" / "products" / "erp_articulos.csv").read_text(encoding="utf-8")
    results = by_code(build(text, delimiter=";"))
    shoe = results["ART-0001"].payload
    assert shoe is not None
    assert shoe["price"] == {"amount": "54.95", "currency": "EUR"}
    assert shoe["brand"]["name"] == "Correcaminos" and shoe["category"]["title"] == "Running"
    assert {"title": "Talla", "value": "42, 43"} in shoe["attributes"]
    assert results["ART-0002"].payload["price"]["amount"] == "1049.00"  # type: ignore[index]
    assert results["ART-0003"].payload["isActive"] is False  # type: ignore[index]
    sdk = (SAMPLES / "exports" / "products" / "sdk_products.csv").read_text(encoding="utf-8")
    first = build(sdk)[0].payload
    assert first is not None
    assert first["price"] == {"amount": "8.61", "currency": "EUR"} and first["imageUrl"].startswith("https://")


def test_extra_columns_can_go_to_metadata() -> None:
    text = "code,title,Material\nA1,Chair,Oak\n"
    assert build(text)[0].payload["attributes"] == [{"title": "Material", "value": "Oak"}]  # type: ignore[index]
    payload = build(text, extra_columns="metadata")[0].payload
    assert payload is not None and payload["metadata"] == {"Material": "Oak"} and "attributes" not in payload


def test_map_overrides_and_missing_code_column() -> None:
    text = "Artikel,Label\nA1,Chair\n"
    with pytest.raises(InputError, match="--map code="):
        build(text)
    assert build(text, overrides={"code": "Artikel", "title": "Label"})[0].payload == {"code": "A1", "title": "Chair"}
    with pytest.raises(UsageError, match="no field"):
        ProductOptions(overrides={"colour": "X"})
    with pytest.raises(UsageError, match="ISO 4217"):
        ProductOptions(currency="EURO")


def test_shopify_current_headers_read_like_the_classic_ones() -> None:
    text = (
        "URL handle,Title,Description,Vendor,Product category,Type,Tags,Published on online store,Status,"
        "SKU,Option1 name,Option1 value,Price,Compare-at price,Product image URL,Weight value (grams)\n"
        "oak-lamp,Oak Lamp,<p>Solid oak</p>,Casa,Home > Lighting > Lamps,Lamps,,TRUE,Active,L-1,Finish,Natural,"
        "59.90,69.90,https://cdn.example.com/lamp.jpg,900\n"
        "oak-lamp,,,,,,,,,L-2,,Dark,64.90,,,900\n"
    )
    payload = build(text, currency="EUR")[0].payload
    assert payload == {
        "code": "oak-lamp",
        "title": "Oak Lamp",
        "isActive": True,
        "description": "Solid oak",
        "price": {"amount": "59.90", "currency": "EUR"},
        "brand": {"code": "casa", "name": "Casa"},
        "category": {"code": "home-lighting-lamps", "title": "Lamps", "description": "Home > Lighting > Lamps"},
        "imageUrl": "https://cdn.example.com/lamp.jpg",
        "attributes": [{"title": "Finish", "value": "Natural, Dark"}, {"title": "Type", "value": "Lamps"}],
    }


@given(
    handles=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=40),
    window=st.integers(min_value=1, max_value=5),
)
@pytest.mark.slow
def test_every_row_ends_in_exactly_one_result_and_each_handle_in_one_product(handles: list[str], window: int) -> None:
    lines = "".join(f"{h},Title {h},{i + 1}\n" for i, h in enumerate(handles))
    headers, rows = _rows("Handle,Title,Variant Price\n" + lines)
    opts = ProductOptions(currency="EUR", window=window)
    results = list(ProductBuilder(build_product_mapping(headers, opts).plan, opts).feed(rows))
    seen = sorted(row.row for result in results for row in result.rows)
    assert seen == [row.row for row in rows]
    sent = [r.code for r in results if r.payload is not None]
    assert len(sent) == len(set(sent))  # a handle is sent once; its late rows are rejected, not re-sent
    for result in results:
        if result.payload is not None:
            handle = result.payload["code"]
            assert {row.cells["Handle"] for row in result.rows} == {handle}
            assert result.payload["price"]["amount"] == f"{min(row.row - 1 for row in result.rows)}.00"


def test_a_variation_without_parent_and_oversized_metadata_are_rejected_saying_why() -> None:
    orphan = build("ID,Type,SKU,Name,Regular price,Parent\n7,variation,x-red,X - Red,5,\n", currency="EUR")[0]
    assert orphan.payload is None and "'Parent' is empty" in orphan.errors[0].message
    big = build("code,title,Notes\nA1,Chair," + "x" * 60001 + "\n", extra_columns="metadata")[0]
    assert big.payload is None and "metadata has" in big.errors[0].message


def test_woocommerce_simple_products_do_not_use_up_the_window() -> None:
    simple = "".join(f"{100 + i},simple,s{i},Simple {i},3,\n" for i in range(50))
    text = (
        "ID,Type,SKU,Name,Regular price,Parent\n1,variable,shirt,Shirt,,\n"
        + simple
        + "2,variation,shirt-s,Shirt - S,20,shirt\n"
    )
    results = by_code(build(text, currency="EUR", window=2))
    assert len(results) == 51
    assert results["1"].payload["price"]["amount"] == "20.00"  # type: ignore[index]
    assert [r.code for r in build(text, currency="EUR", window=2)][:3] == ["100", "101", "102"]  # sent at once
