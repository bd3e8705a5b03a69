"""The sandbox is never stricter than the real API about places (issue 13 §1), over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from biteral_cli.sandbox import RunningSandbox


@pytest.fixture(scope="module")
def client(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": sandbox.api_key, "X-API-Version": "1", "Accept": "application/json"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as http:
        yield http


def _stored(client: httpx.Client, item: dict[str, str]) -> dict[str, str]:
    """POST one customer, assert it was accepted, and return the payload the sandbox stored."""
    code = f"L-{uuid.uuid4().hex[:12]}"
    response = client.post("/customers", json={"code": code, **item})
    assert response.status_code == 200, response.text
    stored = client.get("/customers", params={"code": code})
    assert stored.status_code == 200
    payload: dict[str, str] = stored.json()["payload"]
    return payload


# State codes of the official SDK's example customers (the SDK sends them to the real API with no
# error handling, so the API accepts them): former ISO 3166-2 codes and newer ones pycountry lacks.
@pytest.mark.parametrize(
    ("country", "state"),
    [("LU", "LU-L"), ("GR", "GR-A2"), ("MK", "MK-85"), ("GP", "GP-01"), ("JE", "JE-03"), ("NO", "NO-55"),
     ("NO", "NO-40")],
)  # fmt: skip
def test_sdk_example_state_codes_are_accepted_and_stored_as_given(
    client: httpx.Client, country: str, state: str
) -> None:
    assert _stored(client, {"country": country, "state": state})["state"] == state


def test_sdk_example_state_code_without_a_country_is_accepted(client: httpx.Client) -> None:
    assert _stored(client, {"state": "NO-55"})["state"] == "NO-55"


def test_unknown_wikidata_ids_are_stored_as_given(client: httpx.Client) -> None:
    payload = _stored(client, {"country": "Q99999999", "state": "Q1492", "city": "Q11355"})
    assert (payload["country"], payload["state"], payload["city"]) == ("Q99999999", "Q1492", "Q11355")


def test_fips_state_code_within_a_country_is_accepted(client: httpx.Client) -> None:
    assert _stored(client, {"country": "US", "state": "36"})["state"] == "36"


@pytest.mark.parametrize(
    ("item", "field", "code"),
    [
        ({"country": "ES", "state": "NO-55"}, "state", "unknown_state"),  # another country's code
        ({"state": "XQ-55"}, "state", "unknown_state"),  # no such country
        ({"country": "Q12x"}, "country", "unknown_country"),  # not a WikiData ID
        ({"state": "Nowhereshire"}, "state", "unknown_state"),
    ],
)
def test_malformed_or_contradicting_places_are_still_rejected(
    client: httpx.Client, item: dict[str, str], field: str, code: str
) -> None:
    response = client.post("/customers", json={"code": f"L-{uuid.uuid4().hex[:12]}", **item})
    assert response.status_code == 400
    errors = [e["payload"] for e in response.json()[0]["payload"]["fieldErrors"]]
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in errors]


@pytest.mark.parametrize(
    ("country", "stored"),
    [("Deutschland", "DEU"), ("日本", "JPN"), ("Hong Kong SAR China", "HKG"), ("Vatikanstadt", "VAT")],
)
def test_country_names_in_other_languages_are_accepted(client: httpx.Client, country: str, stored: str) -> None:
    assert _stored(client, {"country": country})["country"] == stored


def test_state_names_in_other_languages_are_accepted(client: httpx.Client) -> None:
    assert _stored(client, {"country": "ES", "state": "Biscaye"})["state"] == "ES-BI"
