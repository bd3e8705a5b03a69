"""Real-world export shapes import without options and land with the right fields (issue: mapping)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from biteral_cli.cli import app
from biteral_cli.mapping import personal_kind
from biteral_cli.sandbox import RunningSandbox

# Each test in its own directory with no BITERAL_ variables from the shell (a BITERAL_DRY_RUN or
# BITERAL_MAP set there would change what lands).
pytestmark = pytest.mark.usefixtures("in_tmp")

EXPORTS = Path(__file__).resolve().parent.parent / "sample_data" / "exports"

# First customer of each export, as GET /customers returns it after a plain import.
LANDED = {
    "erp_clientes.csv": (
        "C000123",
        {"country": "ESP", "state": "ES-M", "city": "Madrid", "yearBorn": 1985, "gender": 2, "isActive": True},
    ),
    "hubspot_contacts.csv": (
        "51",
        {"country": "USA", "state": "US-MA", "city": "Cambridge", "yearBorn": 1967, "gender": 1},
    ),
    "salesforce_contacts.csv": (
        "0035g00000Kx1aBAAR",
        {"country": "USA", "state": "US-TX", "city": "Austin", "yearBorn": 1966},
    ),
    "shopify_customers.csv": ("7283105923251", {"country": "CAN", "state": "CA-ON", "city": "Toronto"}),
    "shopify_customers_legacy.csv": (
        "grace.lee@example.com",
        {"country": "USA", "state": "US-MA", "city": "Cambridge"},
    ),
    "stripe_customers.csv": ("cus_PZ0xK3mJ9qR2aB", {"country": "USA", "state": "US-CA", "city": "San Francisco"}),
    "woocommerce_customers.csv": ("12", {"country": "ESP", "state": "ES-M", "city": "Madrid"}),
}


def test_every_export_is_covered() -> None:
    assert set(LANDED) == {p.name for p in EXPORTS.glob("*.csv")}


@pytest.mark.parametrize("name", sorted(LANDED))
def test_export_lands_with_the_right_fields(name: str, sandbox_factory: Callable[..., RunningSandbox]) -> None:
    sandbox = sandbox_factory()
    # Without an id column the email is the code only when chosen on purpose (no terminal here).
    pinned = ["--code-column", "Email"] if name == "shopify_customers_legacy.csv" else []
    result = CliRunner().invoke(
        app,
        [str(EXPORTS / name), "--api-url", sandbox.url, "--json", *pinned],
        env={"BITERAL_API_KEY": sandbox.api_key},
    )
    summary = json.loads(result.stdout)
    assert summary["rejected"] == summary["failed"] == 0, summary["errors"]
    assert summary["accepted"] == summary["rows"] > 0
    code, expected = LANDED[name]
    response = httpx.get(
        f"{sandbox.url}/customers",
        params={"code": code},
        headers={"X-API-Key": sandbox.api_key, "X-API-Version": "1"},
    )
    assert response.status_code == 200, f"{code} not stored"
    payload = response.json()["payload"]
    assert {key: payload.get(key) for key in expected} == expected
    assert isinstance(payload.get("metadata"), dict) and payload["metadata"]  # unmapped columns kept
    personal = [key for key in payload["metadata"] if personal_kind(key) is not None]
    assert personal == [], f"personal data sent as metadata: {personal}"


def test_stripe_metadata_columns_become_metadata_keys(sandbox_factory: Callable[..., RunningSandbox]) -> None:
    sandbox = sandbox_factory()
    CliRunner().invoke(
        app,
        [str(EXPORTS / "stripe_customers.csv"), "--api-url", sandbox.url, "-q"],
        env={"BITERAL_API_KEY": sandbox.api_key},
    )
    response = httpx.get(
        f"{sandbox.url}/customers",
        params={"code": "cus_PZ0xK3mJ9qR2aB"},
        headers={"X-API-Key": sandbox.api_key, "X-API-Version": "1"},
    )
    metadata = response.json()["payload"]["metadata"]
    assert metadata["plan"] == "pro"
    assert metadata["signup_source"] == "google_ads"
