"""Product exports imported over real HTTP into the sandbox on 127.0.0.1 and read back with GET
/products (issue 14), and the sandbox's /products routes themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.sandbox import RunningSandbox

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
PRODUCTS = SAMPLES / "exports" / "products"


def _headers(sandbox: RunningSandbox) -> dict[str, str]:
    return {"X-API-Key": sandbox.api_key, "X-API-Version": "1", "Accept": "application/json"}


def _get(sandbox: RunningSandbox, code: str) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.url}/products", params={"code": code}, headers=_headers(sandbox))
    assert response.status_code == 200, f"{code} not stored: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _import(sandbox: RunningSandbox, path: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        [str(path), "--entity", "products", "--api-url", sandbox.url, "--json", *options],
        env={"BITERAL_API_KEY": sandbox.api_key},
    )
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _landed(body: dict[str, Any]) -> dict[str, Any]:
    """What a person checks of a stored product: the payload with entities unwrapped."""
    payload = body["payload"]
    out = {k: payload.get(k) for k in ("title", "price", "imageUrl", "isActive")}
    out["brand"] = payload["brand"]["payload"]["name"] if "brand" in payload else None
    out["category"] = payload["category"]["payload"]["title"] if "category" in payload else None
    out["attributes"] = {a["payload"]["title"]: a["payload"]["value"] for a in payload.get("attributes", [])}
    return out


CASES = [
    (
        SAMPLES / "products.csv",
        ["--currency", "EUR"],
        (26, 25, 1),
        "trail-runner-shoe",
        {
            "title": "Trail Runner GTX Running Shoe",
            "price": {"amount": "89.00", "currency": "EUR"},
            "brand": "Northpeak",
            "category": "Athletic Shoes",
            "imageUrl": "https://cdn.shopify.com/s/files/1/0612/3456/7890/files/trail-runner.jpg?v=1712345678",
            "attributes": {"Size": "40, 41, 42", "Color": "Blue", "Tags": "running, outdoor", "Type": "Shoes"},
            "isActive": True,
        },
    ),
    (
        PRODUCTS / "woocommerce_products.csv",
        ["--currency", "EUR"],
        (6, 6, 0),
        "101",
        {
            "title": "Linen Shirt, Relaxed Fit",
            "price": {"amount": "54.00", "currency": "EUR"},
            "brand": None,
            "category": "Shirts",
            "imageUrl": "https://shop.example.com/wp-content/uploads/2024/05/linen-shirt.jpg",
            "attributes": {"Color": "White, Sand", "Size": "S, M, L", "Tags": "summer"},
            "isActive": True,
        },
    ),
    (
        PRODUCTS / "erp_articulos.csv",
        [],
        (4, 4, 0),
        "ART-0001",
        {
            "title": "Zapatilla de running Ligera",
            "price": {"amount": "54.95", "currency": "EUR"},
            "brand": "Correcaminos",
            "category": "Running",
            "imageUrl": "https://tienda.example.es/img/art-0001.jpg",
            "attributes": {"Talla": "42, 43", "Material": "Malla técnica"},
            "isActive": True,
        },
    ),
    (
        PRODUCTS / "sdk_products.csv",
        [],
        (3, 3, 0),
        "P000002",
        {
            "title": "Auriculares inalámbricos con cancelación de ruido",
            "price": {"amount": "129.90", "currency": "USD"},
            "brand": None,
            "category": None,
            "imageUrl": "https://images.example.com/p000002.jpg",
            "attributes": {},
            "isActive": True,
        },
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "options", "counts", "code", "expected"), CASES, ids=lambda c: getattr(c, "name", ""))
def test_each_export_lands_with_title_price_brand_category_image_attributes(
    path: Path,
    options: list[str],
    counts: tuple[int, int, int],
    code: str,
    expected: dict[str, Any],
    sandbox_factory: Callable[..., RunningSandbox],
    in_tmp: Path,
) -> None:
    sandbox = sandbox_factory()
    summary = _import(sandbox, path, *options)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == counts, summary["errors"]
    body = _get(sandbox, code)
    assert body["object"] == "product" and body["id"].startswith("prd_")
    assert _landed(body) == expected


def test_shopify_without_currency_rejects_every_product_naming_the_option(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    sandbox = sandbox_factory()
    summary = _import(sandbox, SAMPLES / "products.csv")
    assert summary["accepted"] == 0 and summary["exit_code"] == 1
    assert any("--currency" in reason for reason in summary["errors"])
    assert "products: 26 rows made 12 products" in summary["files"][str(SAMPLES / "products.csv")]["notes"]
    report = (in_tmp / "products.failures.csv").read_text(encoding="utf-8-sig")
    assert report.count("--currency") == 26  # every row of every product (all are priced), for the re-run


@pytest.mark.slow
def test_rejected_product_rows_go_to_the_failure_report_and_come_back(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    sandbox = sandbox_factory()
    _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR")
    report = in_tmp / "products.failures.csv"
    fixed = report.read_text(encoding="utf-8-sig").replace("mystery-box,,", "mystery-box,Mystery Box,")
    report.write_text(fixed, encoding="utf-8")
    summary = _import(sandbox, report, "--currency", "EUR", "--failures", "again.csv")
    assert (summary["accepted"], summary["rejected"]) == (1, 0)
    assert _get(sandbox, "mystery-box")["payload"]["title"] == "Mystery Box"


@pytest.mark.slow
def test_resume_and_state_work_for_products(sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path) -> None:
    sandbox = sandbox_factory()
    first = _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR", "--state", "s.sqlite")
    again = _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR", "--state", "s.sqlite")
    assert first["accepted"] == 25 and again["skipped"] == 25 and again["accepted"] == 0
    assert sandbox.stats.posts == 1  # the second run had nothing new to send


def _post(sandbox: RunningSandbox, body: object) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/products", json=body, headers=_headers(sandbox))


@pytest.mark.slow
def test_sandbox_validates_what_the_api_documents(sandbox: RunningSandbox) -> None:
    ok = {"code": "sb-1", "title": "Chair", "price": {"amount": "49.95", "currency": "EUR"}}
    assert _post(sandbox, ok).status_code == 200
    cases = [
        ({**ok, "price": {"amount": "49.95", "currency": "XCD"}}, "price.currency", "invalid_currency"),
        ({**ok, "price": {"amount": "49,95", "currency": "EUR"}}, "price.amount", "invalid_value"),
        ({**ok, "price": {"amount": "1.00", "currency": "ZZZ"}}, "price.currency", "invalid_value"),
        ({"code": "sb-new"}, "title", "required"),
        ({**ok, "brand": {"name": "Acme"}}, "brand.code", "required"),
        ({**ok, "attributes": [{"value": "S"}]}, "attributes[0].title", "required"),
        ({**ok, "imageUrl": "/img/a.jpg"}, "imageUrl", "invalid_value"),
        ({**ok, "title": "x" * 10001}, "title", "too_long"),
        ({**ok, "colour": "red"}, "colour", "unknown_field"),
    ]
    for body, field, code in cases:
        response = _post(sandbox, body)
        assert response.status_code == 400, body
        errors = response.json()[0]["payload"]["fieldErrors"]
        assert {"field": field, "code": code} in [{k: e["payload"][k] for k in ("field", "code")} for e in errors], (
            errors
        )
    assert _post(sandbox, [ok] * 101).status_code == 400
    assert _post(sandbox, {"code": "sb-1", "isActive": False}).status_code == 200  # an update keeps the title
    stored = _get(sandbox, "sb-1")["payload"]
    assert stored["title"] == "Chair" and stored["isActive"] is False


def test_sandbox_batch_with_one_bad_product_is_rejected_whole(sandbox: RunningSandbox) -> None:
    good = {"code": "sb-batch-good", "title": "Good"}
    response = _post(sandbox, [good, {"code": "sb-batch-bad"}])
    assert response.status_code == 400
    assert response.json()[0]["payload"]["fieldErrors"][0]["payload"]["field"] == "[1].title"
    assert (
        httpx.get(f"{sandbox.url}/products", params={"code": "sb-batch-good"}, headers=_headers(sandbox)).status_code
        == 404
    )


@pytest.mark.slow
def test_sandbox_get_shape_and_delete(sandbox: RunningSandbox) -> None:
    body = {
        "code": "sb-shape",
        "title": "Lamp",
        "brand": {"code": "casa", "name": "Casa"},
        "category": {"code": "home-lamps", "title": "Lamps"},
        "attributes": [{"title": "Color", "value": "Oak"}],
        "metadata": {"x": 1},
    }
    assert _post(sandbox, body).status_code == 200
    got = _get(sandbox, "sb-shape")
    assert set(got) == {"object", "id", "createdAt", "updatedAt", "projectId", "payload"}
    assert got["payload"]["brand"]["object"] == "brand" and got["payload"]["brand"]["payload"] == body["brand"]
    assert got["payload"]["category"]["object"] == "product_category"
    assert got["payload"]["attributes"][0]["object"] == "product_attribute"
    assert got["payload"]["metadata"] == {"x": 1}
    by_id = httpx.get(f"{sandbox.url}/products", params={"id": got["id"]}, headers=_headers(sandbox))
    assert by_id.json()["payload"]["title"] == "Lamp"
    deleted = httpx.delete(f"{sandbox.url}/products", params={"code": "sb-shape"}, headers=_headers(sandbox))
    assert deleted.status_code == 200
    assert (
        httpx.get(f"{sandbox.url}/products", params={"code": "sb-shape"}, headers=_headers(sandbox)).status_code == 404
    )


def test_sandbox_products_need_the_key(sandbox: RunningSandbox) -> None:
    response = httpx.post(f"{sandbox.url}/products", json={"code": "k", "title": "K"}, headers={"X-API-Version": "1"})
    assert response.status_code == 401


def test_map_shows_product_fields(in_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["map", str(SAMPLES / "products.csv"), "--entity", "products"])
    assert result.exit_code == 0, result.output
    for fragment in ("Handle", "code", "Variant Price", "price", "Vendor", "brand", "(left out)", "shopify export"):
        assert fragment in result.output, fragment


@pytest.mark.slow
def test_entity_from_the_environment_and_the_config_file(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    sandbox = sandbox_factory()
    sdk = str(PRODUCTS / "sdk_products.csv")
    env = {"BITERAL_API_KEY": sandbox.api_key, "BITERAL_ENTITY": "products"}
    result = CliRunner().invoke(app, [sdk, "--api-url", sandbox.url, "--json"], env=env)
    assert json.loads(result.stdout)["accepted"] == 3
    (in_tmp / "biteral-import.toml").write_text('entity = "products"\ncurrency = "EUR"\n', encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [str(SAMPLES / "products.csv"), "--api-url", sandbox.url, "--json"],
        env={"BITERAL_API_KEY": sandbox.api_key},
    )
    assert json.loads(result.stdout)["accepted"] == 25
    assert _get(sandbox, "stoneware-mug")["payload"]["price"] == {"amount": "12.50", "currency": "EUR"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--entity", "products", "--currency", "EURO"], "--currency takes an ISO 4217 code"),
        (["--entity", "products", "--price-rule", "cheapest"], "--price-rule must be lowest or first"),
        (["--entity", "products", "--extra-columns", "tags"], "--extra-columns must be attributes or metadata"),
        (["--entity", "orders"], "--entity must be customers or products"),
        (["--currency", "EUR"], "only apply to --entity products"),
        (["--entity", "products", "--metadata-columns", "Tags"], "--extra-columns"),
    ],
)
def test_bad_product_options_are_one_line_and_exit_2(args: list[str], fragment: str, in_tmp: Path) -> None:
    result = CliRunner().invoke(app, [str(SAMPLES / "products.csv"), "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output


def test_strict_rejects_products_with_warnings(in_tmp: Path) -> None:
    export = in_tmp / "two_titles.csv"
    export.write_text("Handle,Title,Variant Price\na,Alpha,10\na,Alpha II,12\nb,Beta,5\n", encoding="utf-8")
    common = [str(export), "--entity", "products", "--currency", "EUR", "--dry-run", "--json"]
    lenient = json.loads(CliRunner().invoke(app, common).stdout)
    strict = json.loads(CliRunner().invoke(app, [*common, "--strict"]).stdout)
    assert (lenient["accepted"], lenient["warnings"]) == (3, 1)
    assert (strict["accepted"], strict["rejected"]) == (1, 2)


def test_a_currency_the_api_refuses_rejects_only_that_product(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    export = in_tmp / "sdk.csv"
    export.write_text(
        "code,title,price_amount,price_currency\nP1,Phone,8.610000,EUR\nP2,Case,3.5,XCD\nP3,Cable,2,USD\n",
        encoding="utf-8",
    )
    sandbox = sandbox_factory()
    summary = _import(sandbox, export)
    assert (summary["accepted"], summary["rejected"]) == (2, 1)
    assert summary["errors"] == {"price.currency: invalid_currency": 1}
    report = (in_tmp / "sdk.failures.csv").read_text(encoding="utf-8-sig")
    assert "P2" in report and "XCD is not a valid currency" in report and "P1" not in report


@pytest.mark.slow
def test_shards_split_products_without_overlap(sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path) -> None:
    sandbox = sandbox_factory()
    one = _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR", "--shard", "1/2")
    two = _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR", "--shard", "2/2", "--failures", "two.csv")
    assert one["rows"] == two["rows"] == 26
    assert one["accepted"] + two["accepted"] == 25 and one["skipped"] + two["skipped"] == 26
    assert one["accepted"] and two["accepted"]


def test_json_lines_products_with_numbers(sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path) -> None:
    export = in_tmp / "catalog.jsonl"
    lines = [
        {
            "sku": "J1",
            "name": "Kettle",
            "price": 39.9,
            "currency": "EUR",
            "active": True,
            "image": "https://x.example/k.jpg",
        },
        {"sku": "J2", "name": "Toaster", "price": 25, "currency": "EUR", "active": False},
    ]
    export.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    sandbox = sandbox_factory()
    assert _import(sandbox, export)["accepted"] == 2
    kettle = _get(sandbox, "J1")["payload"]
    assert kettle["price"] == {"amount": "39.90", "currency": "EUR"} and kettle["title"] == "Kettle"
    assert _get(sandbox, "J2")["payload"]["isActive"] is False


@pytest.mark.slow
def test_state_refuses_a_run_that_would_change_most_products(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    sandbox = sandbox_factory()
    _import(sandbox, SAMPLES / "products.csv", "--currency", "EUR", "--state", "s.sqlite")
    repriced = in_tmp / "products.csv"
    text = (SAMPLES / "products.csv").read_text(encoding="utf-8")
    repriced.write_text(text.replace(",manual,", ",manual,1"), encoding="utf-8")  # every price: 19.95 -> 119.95
    summary = _import(sandbox, repriced, "--currency", "EUR", "--state", "s.sqlite")
    assert summary["exit_code"] == 2 and "11 of the 11 products known to" in summary["error"], summary


@pytest.mark.slow
def test_resume_sends_only_the_products_not_confirmed(
    sandbox_factory: Callable[..., RunningSandbox], in_tmp: Path
) -> None:
    db = in_tmp / "api.sqlite"
    flaky = sandbox_factory(db=db, error_rate=0.5, seed=7)
    common = ["--currency", "EUR", "--batch-size", "2", "--max-retries", "0", "--concurrency", "1"]
    first = _import(flaky, SAMPLES / "products.csv", *common)
    assert 0 < first["accepted"] < 25 and first["failed"] > 0, first
    flaky.stop()
    healthy = sandbox_factory(db=db)
    again = _import(healthy, SAMPLES / "products.csv", *common, "--resume")
    assert again["resumed"] == first["accepted"]  # every row of a confirmed product, and no other
    assert again["accepted"] == 25 and again["failed"] == 0, again
    assert 0 < healthy.stats.items_received < 11  # only the products the first run did not get through
    for code in ("classic-cotton-tee", "packable-rain-jacket", "stoneware-mug"):
        assert _get(healthy, code)["payload"]["price"]["currency"] == "EUR"


@pytest.mark.slow
def test_map_takes_product_fields_and_a_wrong_one_is_refused_naming_them(in_tmp: Path) -> None:
    common = [str(SAMPLES / "products.csv"), "--entity", "products", "--currency", "EUR", "--dry-run"]
    result = CliRunner().invoke(app, [*common, "--map", "brand=Type", "--output", "p.jsonl", "-q"])
    assert result.exit_code == 1, result.output  # the sample's one product without a title
    sent = [json.loads(line) for line in (in_tmp / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {p["code"]: p["brand"]["name"] for p in sent}["trail-runner-shoe"] == "Shoes"  # its Type, not Vendor
    refused = CliRunner().invoke(app, [*common, "--map", "colour=Color"])
    assert refused.exit_code == 2, refused.output
    assert "products have no field 'colour'" in refused.output and "title" in refused.output
